"""Puts SR blocks into networks after a stage, finds them, bypasses them and takes them out.

A block is attached to the stage module as a child named ``sr``, so the network's own parameter
names do not change (pretrained weights still load, `remove_sr` gives the plain state dict back).
A stage that runs its children in order (``nn.Sequential``) runs the block as its last layer;
any other stage gets a forward hook that applies it to the stage's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .block import SqueezeRemember
from .spec import DEFAULT_MEMORY_BLOCKS, SRSpec, as_spec, spec_from_legacy
from .stages import describe_stages, resolve_stage

SR_CHILD = "sr"


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside; in the mode it was in before afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _default_input_size(model: nn.Module) -> tuple[int, int, int] | None:
    """The input size a model was built for: srblock's zoo or a timm `pretrained_cfg`."""
    size = getattr(model, "default_input_size", None)
    if size is None:
        size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    return tuple(size) if size is not None else None


class _StopForward(Exception):
    """Raised by the probe hook: nothing after the stage needs computing."""


def _run_to_stage(model: nn.Module, stage_name: str, input_size: Sequence[int]) -> object:
    """The output of `stage_name` for a dummy image of `input_size`; the rest is not computed."""
    if len(input_size) != 3 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(
            f"input_size must be (channels, height, width) of positive ints, got {tuple(input_size)!r}"
        )
    outputs: list[object] = []

    def grab(_module: nn.Module, _args: object, output: object) -> None:
        outputs.append(output)
        raise _StopForward

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    handle = model.get_submodule(stage_name).register_forward_hook(grab)
    try:  # in eval mode: a dummy forward must not move BatchNorm statistics
        with evaluating(model), torch.no_grad():
            model(torch.zeros(1, *input_size, device=device, dtype=dtype))
    except _StopForward:
        pass
    except Exception as err:  # the network's own complaint, reworded as what to change
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        default = _default_input_size(model)
        hint = f", e.g. its default {default}" if default and tuple(default) != tuple(input_size) else ""
        raise ValueError(
            f"input_size {tuple(input_size)} does not fit {type(model).__name__} ({first_line}); "
            f"pass the (channels, height, width) of the images the model takes{hint}"
        ) from None
    finally:
        handle.remove()
    if not outputs:
        raise ValueError(f"{stage_name} of {type(model).__name__} is not used by its forward")
    return outputs[0]


def stage_output_shape(model: nn.Module, stage_name: str, input_size: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) of a stage's output, from one forward of a dummy image of `input_size`."""
    output = _run_to_stage(model, stage_name, input_size)
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        raise ValueError(
            f"{stage_name} of {type(model).__name__} does not output a B x C x H x W feature map; "
            f"stages are {describe_stages(model)}"
        )
    _, channels, height, width = output.shape
    return channels, height, width


def _apply_sr(module: nn.Module, _args: object, output: torch.Tensor) -> torch.Tensor:
    """Forward hook on a stage that does not run its children itself: its SR child acts on its output."""
    return getattr(module, SR_CHILD)(output)


def _attach(model: nn.Module, stage_name: str, block: SqueezeRemember, input_size: Sequence[int]) -> None:
    """Makes `block` a child of the stage and ensures it runs once, on the stage's output.

    A stage that runs its children in order (nn.Sequential, timm's RegStage...) runs the new
    last child itself; any other stage gets a forward hook. A probe forward tells which.
    """
    module = model.get_submodule(stage_name)
    module.add_module(SR_CHILD, block)
    calls: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda _m, _args, out: calls.append(out))
    try:
        stage_output = _run_to_stage(model, stage_name, input_size)
        if not calls:
            module.register_forward_hook(_apply_sr)
            stage_output = _run_to_stage(model, stage_name, input_size)
    finally:
        handle.remove()
    if len(calls) != 1 or stage_output is not calls[0]:
        _detach(model, f"{stage_name}.{SR_CHILD}")
        raise ValueError(
            f"cannot put an SR block after {stage_name} of {type(model).__name__}: its forward "
            f"uses its children in a way add_sr cannot follow; stages are {describe_stages(model)}"
        )


def add_sr(
    model: nn.Module,
    stage: int | str,
    spec: SRSpec | None = None,
    input_size: Sequence[int] | None = None,
    **legacy: Any,
) -> nn.Module:
    """Puts a fresh SR block (the paper's where `spec` is None) after `stage` (1-based, or a
    module name) of `model`, in place.

    The block's C, H and W come from one dummy forward at `input_size` (channels, height,
    width); without it, the model's own default input size is used where it has one. Without a
    P in the spec (`memory_blocks=None`) the model's own choice is taken (`sr_default_blocks`:
    the paper's P for srblock's segmentation models), else 4. The model computes exactly what it
    computed before, as the block's memory starts at zero.
    """
    spec = as_spec(spec, "add_sr")
    spec = spec_from_legacy(legacy, "add_sr", spec) or spec or SRSpec()
    if legacy:
        raise TypeError(f"add_sr got unexpected keyword arguments: {', '.join(legacy)}")
    if spec.memory_blocks is None:
        blocks = getattr(model, "sr_default_blocks", DEFAULT_MEMORY_BLOCKS)
        spec = dataclasses.replace(spec, memory_blocks=blocks)
    stage_name = resolve_stage(model, stage)
    if isinstance(getattr(model.get_submodule(stage_name), SR_CHILD, None), SqueezeRemember):
        raise ValueError(
            f"stage {stage!r} ({stage_name}) already has an SR block; remove it with remove_sr first"
        )
    if input_size is None:
        input_size = _default_input_size(model)
        if input_size is None:
            raise ValueError(
                f"input_size is needed to size the memory of {type(model).__name__}: pass "
                "input_size=(channels, height, width), e.g. (3, 224, 224)"
            )
    channels, height, width = stage_output_shape(model, stage_name, tuple(input_size))
    param = next(model.parameters(), None)
    block = SqueezeRemember(
        channels,
        (height, width),
        spec,
        device=param.device if param is not None else None,
        dtype=param.dtype if param is not None and param.is_floating_point() else None,
    )
    _attach(model, stage_name, block, tuple(input_size))
    return model


def sr_blocks(model: nn.Module) -> list[tuple[str, SqueezeRemember]]:
    """Every SR block in `model` with its qualified name, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SqueezeRemember)]


class _Bypassed(nn.Identity):
    """An SR block's place while `sr_bypassed` holds it out (the block kept, not as a child)."""

    def __init__(self, block: SqueezeRemember) -> None:
        super().__init__()
        object.__setattr__(self, "block", block)


@contextlib.contextmanager
def sr_bypassed(model: nn.Module, names: Sequence[str] | None = None) -> Iterator[nn.Module]:
    """Inside, the SR blocks of `model` (all, or those named) are the identity (the paper's
    ablation): each is swapped for an `nn.Identity` in its stage (in every place that holds it),
    and put back after. Calls nest: a block bypassed already stays so."""
    if isinstance(model, SqueezeRemember):
        raise ValueError(
            "sr_bypassed takes a network that holds SR blocks; a lone block bypassed is nn.Identity()"
        )
    places = [
        (n, m) for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, SqueezeRemember)
    ]
    held = {n for n, m in model.named_modules() if isinstance(m, _Bypassed)}
    unknown = sorted(set(names or ()) - {n for n, _ in places} - held)
    if unknown:
        known = ", ".join(n for n, _ in places) or "none"
        raise ValueError(f"no SR block named {', '.join(unknown)}; the SR blocks are {known}")
    swapped = [(n, m) for n, m in places if names is None or n in names]
    for name, block in swapped:
        _put(model, name, _Bypassed(block))
    try:
        yield model
    finally:
        for name, block in swapped:
            _put(model, name, block)


def _put(model: nn.Module, name: str, module: nn.Module) -> None:
    """Makes `module` the submodule `name` of `model`, in the place of the one there."""
    parent_name, _, child = name.rpartition(".")
    (model.get_submodule(parent_name) if parent_name else model).register_module(child, module)


def remove_sr(model: nn.Module) -> nn.Module:
    """Takes every SR block out of `model`, in place: the plain network with the same weights."""
    for name, _ in sr_blocks(model):
        _detach(model, name)
    return model


def _detach(model: nn.Module, name: str) -> None:
    """Deletes the SR block `name` and the hook that ran it, if its stage had one."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    delattr(parent, child)
    for key, hook in list(parent._forward_hooks.items()):
        if hook is _apply_sr:
            del parent._forward_hooks[key]
