"""What timm's model interface asks of the zoo beyond forward and its head, shared by the ResNets and
VGGs: parameter groups for layer-wise lr decay (`group_matcher`), the parameters trained without
weight decay (`no_weight_decay`), and timm's checkpoint_seq, which their forward_features run the
stages through under `set_grad_checkpointing` (inline there: TorchScript compiles it so)."""

from __future__ import annotations

import torch
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices
from torch import nn

from ..block import SqueezeRemember

__all__ = ["checkpoint_seq", "memory_without_decay", "stage_groups", "stage_intermediates", "prune_stages"]


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
