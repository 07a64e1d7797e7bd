"""What one SR block costs beyond arithmetic: the operations it runs and the bytes they move,
forward and backward, countable on the CPU as on a GPU.

- *ops*: the aten operations a backend executes, seen at the dispatcher (after autograd and
  autocast, so autocast's casts and the backward's kernels count); views, which only describe
  a tensor, do not. On a GPU each is about one kernel launch.
- *MB moved*: the bytes those ops read (their tensor inputs) and write (their outputs), a model
  of memory traffic: what a memory-bound block's time follows.
- *kernels* (CUDA only): the kernels torch.profiler sees launched, and their time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .insert import sr_blocks

# ops that only describe tensors (besides views, which the dispatcher marks)
_NOT_WORK = {"detach", "lift_fresh", "empty", "empty_strided", "empty_like", "_local_scalar_dense"}


def _nbytes(tree: object) -> int:
    return sum(t.numel() * t.element_size() for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor))


class _OpLog(TorchDispatchMode):
    """Every op the dispatcher runs inside, with the bytes of its tensor inputs and outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.read = self.written = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if not func.is_view and name not in _NOT_WORK:
            self.ops[name] += 1
            self.read += _nbytes((args, kwargs))
            self.written += _nbytes(out)
        return out


def count_ops(
    fn: Callable[[Any], object], device: torch.device, prepare: Callable[[], Any] = lambda: None
) -> dict[str, Any]:
    """The ops (total and by name) and bytes one call of `fn(prepare())` runs and moves (only
    `fn` is counted); on CUDA also the kernels it launches and their summed time (a second call,
    under torch.profiler)."""
    arg = prepare()
    with _OpLog() as log:
        fn(arg)
    result: dict[str, Any] = {
        "ops": sum(log.ops.values()),
        "MB_moved": (log.read + log.written) / 2**20,
        "MB_written": log.written / 2**20,
        "by_op": dict(log.ops),
    }
    if device.type == "cuda":
        arg = prepare()
        torch.cuda.synchronize(device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn(arg)
            torch.cuda.synchronize(device)
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        result["kernels"] = len(kernels)
        result["kernel_us"] = sum(e.device_time for e in kernels)
        by_kernel: dict[str, list[float]] = {}
        for e in kernels:  # name: [count, microseconds]
            entry = by_kernel.setdefault(e.name[:90], [0, 0.0])
            entry[0] += 1
            entry[1] += e.device_time
        result["by_kernel"] = by_kernel
    return result


def profile_block(
    block: nn.Module, x: torch.Tensor, *, dtype: torch.dtype | None = None, backward: bool = True
) -> dict[str, dict[str, Any]]:
    """One forward (and backward) of `block` on `x`, after a warm-up: {"forward": ..., "backward":
    ...}, each from `count_ops`. `dtype`: under autocast to it (give x in it too, as a network
    under autocast hands it to the block). The backward gets a random gradient, not the
    expanded ones of `sum()`, which would make copies a real gradient does not."""
    device = x.device
    x = x.detach().requires_grad_(backward)

    def forward(_: object = None) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return block(x)

    grad = torch.randn_like(forward())
    result = {"forward": count_ops(forward, device)}
    if backward:

        def fresh_forward() -> torch.Tensor:  # gradients start empty, as after zero_grad(set_to_none)
            block.zero_grad(set_to_none=True)
            x.grad = None
            return forward()

        result["backward"] = count_ops(lambda y: y.backward(grad), device, prepare=fresh_forward)
        block.zero_grad(set_to_none=True)
    return result


# (label, autocast dtype, channels_last): the formats a block meets in training
VARIANTS: tuple[tuple[str, torch.dtype | None, bool], ...] = (
    ("float32", None, False),
    ("float32, channels_last", None, True),
    ("bf16 autocast", torch.bfloat16, False),
    ("bf16 autocast, channels_last", torch.bfloat16, True),
)


def block_input_shapes(model: nn.Module, input_size: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of what each SR block of `model` receives for an image of `input_size`."""
    shapes: dict[str, tuple[int, ...]] = {}

    def shape_of(name: str) -> Callable[[nn.Module, tuple], None]:
        def record(_module: nn.Module, args: tuple) -> None:
            shapes[name] = tuple(args[0].shape[1:])

        return record

    param = next(model.parameters())
    handles = [b.register_forward_pre_hook(shape_of(n)) for n, b in sr_blocks(model)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return shapes


def block_costs(
    model: nn.Module,
    input_size: Sequence[int],
    batch: int,
    device: str | torch.device = "cpu",
    variants: Sequence[tuple[str, torch.dtype | None, bool]] = VARIANTS,
) -> list[dict[str, Any]]:
    """Per SR block of `model` and per variant, the costs of one forward and one backward on a
    random feature map of the shape the block meets at `input_size` and `batch`."""
    device = torch.device(device)
    if not sr_blocks(model):
        raise ValueError("the model has no SR block to profile: give --sr-stage M")
    shapes = block_input_shapes(model, input_size)
    rows = []
    for name, block in sr_blocks(model):
        for label, dtype, channels_last in variants:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            moved = block.to(device, memory_format=fmt)
            x = torch.randn(batch, *shapes[name], device=device, dtype=dtype or torch.float32)
            costs = profile_block(moved, x.contiguous(memory_format=fmt), dtype=dtype)
            row: dict[str, Any] = {"block": name, "variant": label, "batch": batch}
            for part in ("forward", "backward"):
                for key, value in costs[part].items():
                    row[f"{part}_{key}"] = value
            rows.append(row)
    return rows
