"""What timm's model interface asks of the zoo beyond forward and its head, shared by the ResNets and
VGGs (`TimmStages`, over a model's stem and named stages): gradient checkpointing (timm's
checkpoint_seq, which forward_features calls inline, where TorchScript compiles it), parameter
groups for layer-wise lr decay (`stage_groups`), the parameters trained without weight decay, and
timm 1.0's feature API (`forward_intermediates`, `prune_intermediate_layers`)."""

from __future__ import annotations

import torch
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices
from torch import nn

from ..block import SqueezeRemember

__all__ = ["TimmStages", "checkpoint_seq", "stage_groups"]


def stage_groups(stem: str, stage: str, coarse: bool) -> dict[str, object]:
    """timm's group_matcher for a stem and numbered stages (`stage`: the regex before a stage's
    number) of numbered blocks: a stage's SR block (and its regulariser) in the group of the
    stage's last block (timm's MATCH_PREV_GROUP, 99999); the head last."""
    if coarse:
        return {"stem": stem, "blocks": rf"^{stage}(\d+)\."}
    blocks = [(rf"^{stage}(\d+)\.(\d+)\.", None), (rf"^{stage}(\d+)\.(?:sr|drop)\.", (99999,))]
    return {"stem": stem, "blocks": blocks}


def memory_without_decay(model: nn.Module) -> set[str]:
    """timm's no_weight_decay(): the SR memories whose spec trains them without weight decay
    (sr_memory_weight_decay: 0), by parameter name."""
    return {
        f"{name}.memory"
        for name, module in model.named_modules()
        if isinstance(module, SqueezeRemember) and module.spec.memory_weight_decay == 0
    }


def stage_intermediates(
    stages: list[nn.Module], x: torch.Tensor, indices: int | list[int] | None, stop_early: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's forward_intermediates over the stages (`x`: the stem's output): the last stage's map
    and the maps of the stages `indices` names (feature_info's, an SR block inside its stage)."""
    take, last = feature_take_indices(len(stages), indices)
    maps = []
    for index, stage in enumerate(stages[: last + 1] if stop_early else stages):
        x = stage(x)
        if index in take:
            maps.append(x)
    return x, maps


def prune_stages(model: nn.Module, names: list[str], indices: int | list[int], prune_head: bool) -> list[int]:
    """timm's prune_intermediate_layers: the stages after the last one `indices` takes become
    nn.Identity (and the head, `prune_head`), so forward_intermediates computes no more."""
    take, last = feature_take_indices(len(names), indices)
    for name in names[last + 1 :]:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
    if prune_head:
        model.reset_classifier(0, "")
    return take


class TimmStages:
    """timm's interface over a model's stages: the model names them (`stage_names`, in order, as
    feature_info does) and runs its stem (`forward_stem`); an SR block is inside its stage. (No
    class annotations: TorchScript would read them as the scripted module's attributes.)"""

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        return memory_without_decay(self)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's: the maps of the stages `indices` names (feature_info's), and the last one's."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be NCHW, got {output_fmt!r}")
        stages = [self.get_submodule(name) for name in self.stage_names]
        x, maps = stage_intermediates(stages, self.forward_stem(x), indices, stop_early)
        return maps if intermediates_only else (x, maps)

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        return prune_stages(self, list(self.stage_names), indices, prune_head)
