"""What an SR block costs: multiply-adds, and latency measured side by side with the plain model.

The two models run interleaved in one process (A B A B ..., after a warm-up, synchronised on
CUDA), so drift in clocks or load hits both alike; the overhead is the median of the per-pair
ratios B/A with a bootstrap 95% confidence interval.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import COMPILE_MODES
from .export import export_onnx, onnx_session
from .insert import evaluating, remove_sr, sr_blocks
from .params import count_params


def count_macs(model: nn.Module, input_size: tuple[int, int, int], batch: int = 1) -> int:
    """Multiply-adds of one forward at `input_size`, from torch.utils.flop_counter (FLOPs / 2)."""
    param = next(model.parameters())
    x = torch.zeros(batch, *input_size, device=param.device, dtype=param.dtype)
    with evaluating(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


MIN_PAIRS_FOR_CI = 10  # a bootstrap over fewer pairs says little; over one it says nothing


@dataclass
class Timing:
    """Seconds per call of A (plain) and B (with SR), measured in pairs."""

    plain: np.ndarray
    sr: np.ndarray

    def summary(self, seed: int = 0) -> dict[str, float | None]:
        """Medians, the median paired ratio as an overhead, and its bootstrap 95% interval, which
        only MIN_PAIRS_FOR_CI pairs or more give (fewer: None, never an interval of one value)."""
        ratios = self.sr / self.plain
        low = high = None
        if len(ratios) >= MIN_PAIRS_FOR_CI:
            rng = np.random.default_rng(seed)
            boot = np.median(rng.choice(ratios, size=(2000, len(ratios)), replace=True), axis=1)
            low, high = (100.0 * (float(q) - 1.0) for q in np.percentile(boot, [2.5, 97.5]))
        return {
            "plain_ms": 1e3 * float(np.median(self.plain)),
            "plain_iqr_ms": 1e3 * float(np.subtract(*np.percentile(self.plain, [75, 25]))),
            "sr_ms": 1e3 * float(np.median(self.sr)),
            "sr_iqr_ms": 1e3 * float(np.subtract(*np.percentile(self.sr, [75, 25]))),
            "overhead_pct": 100.0 * (float(np.median(ratios)) - 1.0),
            "overhead_ci_low_pct": low,
            "overhead_ci_high_pct": high,
            "repeats": len(ratios),
        }


def interleaved(
    plain: Callable[[], object], sr: Callable[[], object], repeats: int, warmup: int, device: torch.device
) -> Timing:
    """Times `plain` and `sr` alternately, A B B A A B ..., so neither always runs first."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn: Callable[[], object]) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    for _ in range(warmup):
        plain()
        sr()
    a, b = np.empty(repeats), np.empty(repeats)
    for i in range(repeats):
        if i % 2 == 0:
            a[i], b[i] = timed(plain), timed(sr)
        else:
            b[i], a[i] = timed(sr), timed(plain)
    return Timing(a, b)


def _outputs(out: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Every head's output: a classifier's logits, or a segmentation model's main and auxiliary heads
    (a training step's loss counts them all)."""
    return list(out.values()) if isinstance(out, dict) else [out]


def _step_fn(
    model: nn.Module, x: torch.Tensor, train: bool, dtype: torch.dtype | None, compile: str | None = None
) -> Callable[[], object]:
    """One inference forward, or one training step (forward, backward, SGD step); with `compile`,
    the model's forward through torch.compile in that mode (reduce-overhead: CUDA graphs, which
    take away the cost of launching each small kernel)."""
    if compile is not None and compile not in COMPILE_MODES:
        raise ValueError(f"compile mode {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    # static shapes: a second model of the same class at another size must not turn this one's graph
    # dynamic (dynamo's automatic dynamic shapes), nor use up its recompile limit (bench_pair resets)
    net = torch.compile(model, mode=compile, dynamic=False) if compile else model
    if not train:
        model.eval()

        @torch.inference_mode()
        def infer() -> object:
            with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
                return net(x)

        return infer
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with torch.no_grad():
        shape = _outputs(model(x))[0].shape  # (B, classes) or, for segmentation, (B, classes, H, W)
    target = torch.zeros(shape[:1] + shape[2:], dtype=torch.long, device=x.device)

    def step() -> object:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            loss = sum(F.cross_entropy(out.float(), target) for out in _outputs(net(x)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step


# what a paired timing reports: both medians, the overhead and its interval, and what SR adds
TIMING_COLUMNS = (
    "plain_ms",
    "sr_ms",
    "overhead_pct",
    "overhead_ci_low_pct",
    "overhead_ci_high_pct",
    "macs_overhead_pct",
    "params_overhead_pct",
)


def _require_sr(model: nn.Module) -> None:
    if not sr_blocks(model):
        raise ValueError("the model has no SR block to measure: give --sr-stage M")


def bench_pair(
    model_sr: nn.Module,
    input_size: tuple[int, int, int],
    *,
    batch: int = 1,
    train: bool = False,
    device: str | torch.device = "cpu",
    repeats: int = 50,
    warmup: int = 5,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    compile: str | None = None,
) -> dict[str, Any]:
    """The model with its SR blocks against a copy without them: latency, MACs, parameters. Both
    are copies: the caller's model keeps its device, memory format and mode. `compile` (a
    torch.compile mode) compiles both alike."""
    _require_sr(model_sr)
    device = torch.device(device)
    model_sr = copy.deepcopy(model_sr).to(device)
    plain = remove_sr(copy.deepcopy(model_sr))
    macs_sr, macs_plain = count_macs(model_sr, input_size, batch), count_macs(plain, input_size, batch)
    if channels_last:
        model_sr, plain = (m.to(memory_format=torch.channels_last) for m in (model_sr, plain))
    x = torch.randn(batch, *input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if compile:
        torch._dynamo.reset()  # each pair compiles afresh: no graphs or recompile counts of earlier pairs
    timing = interleaved(
        _step_fn(plain, x, train, dtype, compile),
        _step_fn(model_sr, x, train, dtype, compile),
        repeats,
        warmup,
        device,
    )
    params_plain, params_sr = count_params(plain), count_params(model_sr)
    return {
        "batch": batch,
        "input_size": list(input_size),
        "mode": "train step" if train else "inference",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads",
        "dtype": str(dtype).removeprefix("torch.") if dtype else "float32",
        "compile": compile or "no",
        **timing.summary(),
        "plain_macs": macs_plain,
        "sr_macs": macs_sr - macs_plain,
        "macs_overhead_pct": 100.0 * (macs_sr - macs_plain) / macs_plain,
        "plain_params": params_plain,
        "sr_params": params_sr - params_plain,
        "params_overhead_pct": 100.0 * (params_sr - params_plain) / params_plain,
    }


def bench_onnx_pair(
    model_sr: nn.Module,
    input_size: tuple[int, int, int],
    *,
    batch: int = 1,
    repeats: int = 50,
    warmup: int = 5,
) -> dict[str, Any]:
    """The model with its SR blocks against a copy without them, both exported to ONNX and run by
    onnxruntime on the CPU, interleaved."""
    _require_sr(model_sr)
    plain = remove_sr(copy.deepcopy(model_sr))
    with tempfile.TemporaryDirectory() as tmp:
        sessions = [
            onnx_session(export_onnx(m, input_size, Path(tmp) / f"{n}.onnx", batch=batch))
            for n, m in (("plain", plain), ("sr", model_sr))
        ]
        x = {"x": torch.randn(batch, *input_size).numpy()}
        timing = interleaved(
            lambda: sessions[0].run(None, x),
            lambda: sessions[1].run(None, x),
            repeats,
            warmup,
            torch.device("cpu"),
        )
    return {
        "mode": "onnxruntime inference",
        "batch": batch,
        "device": "CPU (onnxruntime)",
        **timing.summary(),
    }
