"""Every GPU number and every CUDA path of srblock from one command, within a time budget.

    PYTHONPATH=src python benchmarks/gpu_check.py --out DIR            # one GPU, about 8 minutes
    python benchmarks/gpu_check.py --out DIR --tiny                    # every part at toy size, CPU

Writes DIR/gpu_check.json and DIR/gpu_check.md: the machine, versions, command and date, then one
section each (a failing section records its error and the others still run):

- r18_throughput: ResNet18 + SR (3, 2) on CIFAR-100-shaped synthetic data (uint8, 45,000 training
  and 5,000 validation images) through `srblock train`: the paper's recipe (batch 128, SGD, crop +
  flip), bf16, channels_last, fused SGD; seconds per epoch from metrics.csv (validation included)
  with torch.compile on the fast path, and without compile on the fast and the DataLoader paths
  for their ratio; the 200-epoch time they imply.
- step_throughput: the same model's training steps alone (fast path, bf16, fused SGD), eager,
  compiled, and compiled with CUDA graphs (`mode="reduce-overhead"`): what the engine adds, and
  what launching kernels costs.
- paper_overhead: `srblock bench --paper` (the paper's latency settings (a), (b), (c)), float32
  and bf16 + channels_last: SR against plain interleaved, median ratio and its 95% interval.
- paper_overhead_compiled: settings (a) (training step) and (b), both models compiled with CUDA
  graphs (`--compile reduce-overhead`).
- parallel: `srblock train --parallel N` for N = 1, 2, 4, 8 runs of ResNet18 + SR at once on one
  GPU against `--stack N` (N seeds as one stacked network; eager, then N = 4 compiled with CUDA
  graphs if the budget allows): total training images/s, and its ratio to one run.
- deeplabv3: DeepLabv3-R50-D8 + SR training iterations at 512 x 1024, batch 2, bf16, plain and SR
  interleaved.
- syncs: host-device synchronisations per training step of the classification loop, from two
  runs of different lengths under torch.cuda.set_sync_debug_mode (CUDA only).
- jpeg_decode: the ImageNet pipeline's images/s, JPEGs decoded in DataLoader workers against
  batches decoded on the GPU (nvjpeg).
- cuda_tests: the tests marked `cuda` (tests/test_cuda.py), run by pytest.
- startup: `srblock train --verbose`: launch to the first training step and where the seconds
  go, inductor's caches cold and then warm (run_times.py).
- end_to_end: the CIFAR-100 recipe for 200 real epochs, launch to result.json, one seed and then
  5 seeds stacked (`--stack 5`); it needs a command of its own (`--only end_to_end`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

import block_variants  # noqa: E402
import run_times  # noqa: E402
from imagenet_pipeline import images_per_second, write_jpegs  # noqa: E402
from train_throughput import make_loader, train_throughput  # noqa: E402

from srblock.bench import TIMING_COLUMNS, bench_pair  # noqa: E402
from srblock.cli import main as srblock_main  # noqa: E402
from srblock.data import make_file_loader  # noqa: E402
from srblock.data.imagenet import collate_encoded, imagenet_transform, load_imagenet  # noqa: E402
from srblock.factory import create_model  # noqa: E402
from srblock.insert import sr_blocks  # noqa: E402
from srblock.paper_latency import PAPER_SETTINGS, bench_paper  # noqa: E402
from srblock.profile import block_input_shapes, profile_block  # noqa: E402
from srblock.render import render  # noqa: E402
from srblock.run_folder import RunFolder  # noqa: E402
from tests.helpers import write_cifar100  # noqa: E402  (CIFAR-100's layout, synthetic images)


class Check:
    """The run's settings: sizes (full or --tiny), the device, the time left, scratch space."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.tiny, self.scratch, self.started, self.budget = args.tiny, scratch, time.time(), args.budget
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.fail, self.out = set(args.fail or []), Path(args.out)
        self.r18_variants, self.parallel_variants = args.r18_variants, args.parallel_variants
        self.blocks, self.compiled_blocks = args.block_variants, args.compiled_blocks
        self.compiled_precisions = args.compiled_precisions

    def left(self) -> float:
        return self.budget - (time.time() - self.started)

    def timeout(self, full: float) -> float:
        """A subprocess's limit: its share, but never past the budget."""
        return max(10.0, min(full, self.left()))


def run_srblock(
    check: Check, args: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m srblock ARGS` in a fresh process (its own compile caches and CUDA context)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "srblock", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=check.timeout(timeout),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"srblock {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()[-600:]}"
        )
    return done


R18_VARIANTS = ("graphs", "compile", "eager", "dataloader")  # r18_throughput's, as --r18-variants names them


def r18_throughput(check: Check) -> dict[str, Any]:
    train_images, test_images = (320, 64) if check.tiny else (50_000, 10_000)
    data = write_cifar100(check.scratch / "cifar", train_images, test_images)
    model = "resnet10s_cifar" if check.tiny else "resnet18_cifar"
    batch, epochs, workers = (32, 2, 2) if check.tiny else (128, 3, 8)
    common = f"train cifar100 --quiet --set model={model} --set sr_stage=3 --set sr_memory_blocks=2"
    common += f" --set batch_size={batch}"
    variants = [  # (label, loader, compile mode or None, epochs); on the CPU nothing is compiled
        ("fast path, compile with CUDA graphs", "fast", "reduce-overhead", epochs),
        ("fast path, compile", "fast", "default", epochs),
        ("fast path", "fast", None, 1),
        (f"DataLoader, {workers} workers", "dataloader", None, 1),
    ]
    variants = [v for v, key in zip(variants, R18_VARIANTS) if key in check.r18_variants]
    if check.tiny:  # nothing compiles on the CPU: the fast-path variants would be one (and the
        variants = variants[:1]  # DataLoader path trains in tests/test_train.py)
    rows = []
    for index, (name, loader, mode, n) in enumerate(variants):
        mode = None if check.tiny else mode
        row: dict[str, Any] = {"variant": name, "model": f"{model} + SR (3, 2)", "batch": batch, "epochs": n}
        rows.append(row)
        if check.left() < 30:
            row["error"] = "skipped: the time budget is spent"
            continue
        out = check.scratch / f"r18-{index}"
        sets = f" --set loader={loader} --set epochs={n} --set compile={str(mode is not None).lower()}"
        sets += f" --set num_workers={workers}" if loader == "dataloader" else ""  # the fast path has none
        sets += f" --set compile_mode={mode or 'default'}"
        try:  # one variant failing leaves the others' numbers
            run_srblock(
                check,
                (common + sets).split() + ["--data", str(data), "--out", str(out)],
                240 if mode else 120,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            row["error"] = str(err)[-600:]
            continue
        [folder] = [p.parent for p in out.rglob("metrics.csv")]
        seconds = [r["seconds"] for r in RunFolder(folder).metrics()]
        steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
        row.update(
            first_epoch_s=seconds[0],
            epoch_s=steady,
            train_images_per_s=0.9 * train_images / steady,
            **{"200_epochs_min": (seconds[0] + 199 * steady) / 60},
        )  # the 90% training split
    done = {r["variant"]: r["train_images_per_s"] for r in rows if "train_images_per_s" in r}
    columns = [
        "variant",
        "model",
        "batch",
        "epochs",
        "first_epoch_s",
        "epoch_s",
        "train_images_per_s",
        "200_epochs_min",
        "error",
    ]
    note = f"epoch seconds include the validation pass over {test_images // 2:,} images; bf16 on a GPU"
    result = {"rows": rows, "columns": columns, "note": note}
    loader = next((v[0] for v in variants if v[1] == "dataloader"), None)
    if "fast path" in done and loader in done:
        result["fast_over_dataloader"] = done["fast path"] / done[loader]
    return result


def step_throughput(check: Check) -> dict[str, Any]:
    """Training steps alone (no engine: no evaluation, metrics, checkpoints), on the fast path, to tell
    the engine's cost from the model's, and launch overhead (CUDA graphs) from arithmetic."""
    model = "resnet10s_cifar" if check.tiny else "resnet18_cifar"
    count, steps, warmup = (256, 4, 2) if check.tiny else (50_000, 300, 30)
    images, labels = (
        torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8),
        torch.randint(0, 100, (count,)),
    )
    loader = make_loader("fast", images, labels, check.device, 128, 0)
    precision = "bf16-mixed" if check.device.type == "cuda" else "32-true"
    modes = [None] if check.tiny else [None, "default", "reduce-overhead"]
    rows = []
    for mode in modes:
        ips = train_throughput(model, True, loader, check.device, steps, warmup, precision, mode)
        rows.append(
            {
                "model": f"{model} + SR (3, 2)",
                "compile": mode or "no",
                "batch": 128,
                "images_per_s": ips,
                "200_epochs_min": 200 * 45_000 / ips / 60,
            }
        )
    return {"rows": rows, "precision": precision}


def _paper_gpu_settings(check: Check) -> list:
    """The paper's GPU settings: (a) a training step at batch 128, (b) inference at batch 5."""
    settings = [s for s in PAPER_SETTINGS if s.device is None and (s.train or s.batch < 128)]
    if check.tiny:
        small = dict(name="resnet10s_cifar", sr_stage=3, sr_blocks=2)
        settings = [dataclasses.replace(s, model=small, input_size=(3, 16, 16), batch=2) for s in settings]
    return settings


def _block_time_us(block: torch.nn.Module, x: torch.Tensor, dtype, train: bool, repeats: int) -> float:
    """Median microseconds of the block alone, forward (and backward with `train`), eager."""
    x = x.detach().requires_grad_(train)
    grad = None

    def once() -> None:
        nonlocal grad
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = block(x) if train else block(x).detach()
        if train:
            grad = torch.randn_like(out) if grad is None else grad
            block.zero_grad(set_to_none=True)  # as a training step does: no accumulation kernels
            x.grad = None
            out.backward(grad)

    for _ in range(3):
        once()
    times = []
    for _ in range(repeats):
        if x.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
        else:
            started = time.perf_counter()
            once()
            times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def block_profile(check: Check) -> dict[str, Any]:
    """One SR block of the paper's settings (a) (training step: forward and backward) and (b)
    (inference), in each forward of --block-variants (benchmarks/block_variants.py), float32 and
    bf16 + channels_last: kernels launched (CUDA) or ops (CPU), the bytes they move, the summed
    kernel time, and the block's own eager time; the five slowest kernels per row in the JSON."""
    rows, details = [], {}
    for setting in _paper_gpu_settings(check):
        kwargs = dict(setting.model)
        model = create_model(kwargs.pop("name"), input_size=setting.input_size, **kwargs)
        shape = next(iter(block_input_shapes(model, setting.input_size).values()))
        for variant in check.blocks:
            for label, dtype, channels_last in (
                ("float32", None, False),
                ("bf16, channels_last", torch.bfloat16, True),
            ):
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                block = sr_blocks(model)[0][1].to(check.device, memory_format=fmt)
                with torch.no_grad():
                    block.memory.normal_(0, 0.1)
                x = torch.randn(setting.batch, *shape, device=check.device, dtype=dtype or torch.float32)
                x = x.contiguous(memory_format=fmt)
                with block_variants.use(variant):
                    costs = profile_block(block, x, dtype=dtype, backward=setting.train)
                    us = _block_time_us(block, x, dtype, setting.train, 5 if check.tiny else 100)
                row = {"setting": setting.name, "block": variant, "precision": label, "batch": setting.batch}
                for part, cost in costs.items():
                    row[f"{part}_kernels"] = cost.get("kernels", cost["ops"])
                    row[f"{part}_MB_moved"] = cost["MB_moved"]
                    row[f"{part}_kernel_us"] = cost.get("kernel_us")
                    slowest = sorted(cost.get("by_kernel", {}).items(), key=lambda kv: -kv[1][1])[:5]
                    details[f"{setting.name} | {variant} | {label} | {part}"] = slowest or cost["by_op"]
                row["eager_us"] = us
                rows.append(row)
    columns = [
        "setting",
        "block",
        "precision",
        "batch",
        "forward_kernels",
        "backward_kernels",
        "forward_MB_moved",
        "backward_MB_moved",
        "forward_kernel_us",
        "backward_kernel_us",
        "eager_us",
    ]
    note = "kernels: CUDA kernels launched (on the CPU: aten ops); eager_us: the block alone, median"
    return {"rows": rows, "columns": columns, "note": note, "slowest_kernels": details}


def _profile_steps(check: Check, model_name: str, mode: str | None, loader, steps: int, warmup: int):
    """(row, slowest kernels) of `steps` profiled training steps after `warmup`."""
    from torch.profiler import ProfilerActivity, profile

    cuda = check.device.type == "cuda"
    model = create_model(model_name, num_classes=100, sr_stage=3, sr_blocks=2)
    model = model.to(check.device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, fused=cuda or None
    )
    torch._dynamo.reset()
    net = torch.compile(model, mode=mode, dynamic=False) if mode else model
    dtype = torch.bfloat16 if cuda else torch.float32
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in loader]

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        with torch.autocast(check.device.type, dtype=dtype, enabled=cuda):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(warmup):
        step(i)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for i in range(steps):
            step(i)
        sync()
    wall = (time.perf_counter() - started) / steps
    gpu = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for e in gpu:
        entry = by_name.setdefault(e.name[:90], [0, 0.0])
        entry[0] += 1 / steps
        entry[1] += e.device_time / steps
    row = {
        "compile": mode or "eager",
        "kernels_per_step": len(gpu) / steps if gpu else None,
        "gpu_busy_ms_per_step": sum(e.device_time for e in gpu) / steps / 1e3 if gpu else None,
        "wall_ms_per_step_profiled": wall * 1e3,
        "images_per_s_profiled": 128 / wall,
    }
    return row, sorted(by_name.items(), key=lambda kv: -kv[1][1])[:15]


def step_profile(check: Check) -> dict[str, Any]:
    """The ResNet18 + SR (3, 2) training step (batch 128, bf16, channels_last, fused SGD, the fast
    path's batches), eager and compiled with CUDA graphs, under torch.profiler: kernels launched
    per step, GPU busy time per step against the wall time per step, and the slowest kernels
    (count and microseconds per step)."""
    model_name = "resnet10s_cifar" if check.tiny else "resnet18_cifar"
    count, steps, warmup = (256, 3, 2) if check.tiny else (12_800, 20, 30)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    loader = make_loader("fast", images, torch.randint(0, 100, (count,)), check.device, 128, 0)
    rows, slowest = [], {}
    for mode in [None] if check.device.type == "cpu" else [None, "reduce-overhead"]:
        row, slowest[mode or "eager"] = _profile_steps(check, model_name, mode, loader, steps, warmup)
        rows.append(row)
    note = f"{model_name} + SR (3, 2), batch 128, {steps} profiled steps after {warmup}"
    return {"rows": rows, "note": note + "; the profiler slows the host", "slowest_kernels": slowest}


def paper_overhead(check: Check) -> dict[str, Any]:
    """`srblock bench --paper` for each forward of --block-variants, float32 and bf16 +
    channels_last; on a GPU the GPU settings only ((c) is the CPU's: `srblock bench --paper` there)."""
    settings = [s for s in PAPER_SETTINGS if s.device is None or check.device.type == "cpu"]
    if check.tiny:  # every setting, at ResNet10s' size
        small = dict(name="resnet10s_cifar", sr_stage=3, sr_blocks=2)
        settings = [
            dataclasses.replace(s, model=small, input_size=(3, 16, 16), batch=2) for s in PAPER_SETTINGS
        ]
    repeats, warmup = (2, 1) if check.tiny else (100, 10)
    rows = []
    for variant in check.blocks:
        for label, dtype, channels_last in (
            ("float32", None, False),
            ("bf16, channels_last", torch.bfloat16, True),
        ):
            if rows and check.left() < 20:
                rows.append(
                    {"block": variant, "precision": label, "error": "skipped: the time budget is spent"}
                )
                continue
            with block_variants.use(variant):
                timed = bench_paper(
                    check.device,
                    repeats=repeats,
                    warmup=warmup,
                    dtype=dtype,
                    channels_last=channels_last,
                    settings=settings,
                )
            rows += [{"block": variant, "precision": label, **row} for row in timed]
    columns = [
        "block",
        "precision",
        "setting",
        "mode",
        "batch",
        "device",
        *TIMING_COLUMNS,
        "paper_overhead_pct",
        "error",
    ]
    return {"rows": rows, "columns": columns}


# runs at once as processes (--parallel N), or as one stacked network (--stack N), and compiled
# with CUDA graphs (-graphs): (name, N, torch.compile mode, flag)
PARALLEL_VARIANTS = {
    "1": (1, None, "--parallel"),
    "2": (2, None, "--parallel"),
    "4": (4, None, "--parallel"),
    "8": (8, None, "--parallel"),
    "4-graphs": (4, "reduce-overhead", "--parallel"),
    "stack2": (2, None, "--stack"),
    "stack4": (4, None, "--stack"),
    "stack8": (8, None, "--stack"),
    "stack4-graphs": (4, "reduce-overhead", "--stack"),
}
TINY_PARALLEL = ("stack2",)  # (--parallel itself: tests/test_parallel.py)


def parallel(check: Check) -> dict[str, Any]:
    """`srblock train --seeds ... --parallel N` (N processes) against `--stack N` (one network of N
    seeds): N runs of ResNet18 + SR at once on one GPU (bf16, fast path; eager, and N = 4 compiled
    with CUDA graphs); total training images/s from each run's steady epochs (metrics.csv)."""
    train_images, test_images = (256, 64) if check.tiny else (20_000, 1_000)
    data = write_cifar100(check.scratch / "cifar-parallel", train_images, test_images)
    model = "resnet10s_cifar" if check.tiny else "resnet18_cifar"
    epochs = 2 if check.tiny else 3
    names = [
        n
        for n in PARALLEL_VARIANTS
        if n in check.parallel_variants and (n in TINY_PARALLEL or not check.tiny)
    ]
    variants = [PARALLEL_VARIANTS[n] for n in names]
    rows = []
    for n, mode, flag in variants:
        row: dict[str, Any] = {
            "runs_at_once": n,
            "as": "processes" if flag == "--parallel" else "one stacked network",
            "compile": mode or "no",
            "model": f"{model} + SR (3, 2)",
        }
        rows.append(row)
        if check.left() < (150 if mode else 45):
            row["error"] = "skipped: the time budget is spent"
            continue
        out = check.scratch / f"parallel-{n}-{mode}-{flag}"
        line = f"train cifar100 --quiet --set model={model} --set sr_stage=3 --set epochs={epochs}"
        line += f" --set val_fraction=0 --set limit_test={test_images} --set num_workers=0"
        line += f" --set compile={str(mode is not None).lower()} --set compile_mode={mode or 'default'}"
        line += f" {flag} {n} --seeds {' '.join(map(str, range(n)))}"
        started = time.time()
        try:
            run_srblock(check, line.split() + ["--data", str(data), "--out", str(out)], 240)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            row["error"] = str(err)[-600:]
            continue
        steady = [
            statistics.median([r["seconds"] for r in RunFolder(f.parent).metrics()][1:])
            for f in out.rglob("metrics.csv")
        ]
        # a stack's runs share their epochs: their images add up over one epoch's seconds
        row.update(
            wall_s=time.time() - started,
            epoch_s=statistics.median(steady),
            images_per_s=sum(train_images / s for s in steady),
        )
    base = next((r["images_per_s"] for r in rows if "images_per_s" in r and r["runs_at_once"] == 1), None)
    for row in rows:
        if base and "images_per_s" in row:
            row["over_one_run"] = row["images_per_s"] / base
    columns = [
        "runs_at_once",
        "as",
        "compile",
        "model",
        "wall_s",
        "epoch_s",
        "images_per_s",
        "over_one_run",
        "error",
    ]
    note = (
        f"batch 128; {train_images:,} training images per run and epoch; "
        f"epoch seconds include validation on {test_images:,}"
    )
    return {"rows": rows, "columns": columns, "note": note}


def paper_overhead_compiled(check: Check) -> dict[str, Any]:
    """The paper's GPU settings (a) training step and (b), both models compiled with CUDA graphs
    (`srblock bench --paper --compile reduce-overhead`), for each forward of --compiled-blocks and
    each of --compiled-precisions: the block's cost without launch overhead. (c) is a CPU setting;
    (a)'s inference is left out to keep the compile time down."""
    settings = _paper_gpu_settings(check)
    repeats, warmup = (2, 1) if check.tiny else (60, 10)
    mode = None if check.device.type == "cpu" else "reduce-overhead"  # on the CPU: not compiled (minutes)
    rows = []
    for variant in check.compiled_blocks:
        for precision in check.compiled_precisions:
            if rows and check.left() < 120:
                rows.append(
                    {"block": variant, "precision": precision, "error": "skipped: the budget is spent"}
                )
                continue
            dtype, channels_last = (torch.bfloat16, True) if precision == "bf16" else (None, False)
            with block_variants.use(variant):
                timed = bench_paper(
                    check.device,
                    repeats=repeats,
                    warmup=warmup,
                    compile=mode,
                    settings=settings,
                    dtype=dtype,
                    channels_last=channels_last,
                )
            label = "bf16, channels_last" if channels_last else "float32"
            rows += [{"block": variant, "precision": label, **row} for row in timed]
    columns = ["block", "precision", "setting", "mode", "batch", "compile", *TIMING_COLUMNS]
    return {"rows": rows, "columns": [*columns, "paper_overhead_pct", "error"]}


def deeplabv3(check: Check) -> dict[str, Any]:
    name, size = ("fcn_resnet10s", (1, 64, 64)) if check.tiny else ("deeplabv3_r50_d8", (3, 512, 1024))
    model = create_model(name, sr_stage=2, input_size=size)
    dtype = torch.bfloat16 if check.device.type == "cuda" else None
    repeats, warmup = (2, 1) if check.tiny else (30, 5)
    row = bench_pair(
        model,
        size,
        batch=2,
        train=True,
        device=check.device,
        repeats=repeats,
        warmup=warmup,
        dtype=dtype,
        channels_last=True,
    )
    row.update(
        model=name,
        input="x".join(map(str, size)),
        plain_it_per_s=1e3 / row["plain_ms"],
        sr_it_per_s=1e3 / row["sr_ms"],
    )
    columns = ["model", "input", "batch", "dtype", "device", "plain_it_per_s", "sr_it_per_s", *TIMING_COLUMNS]
    return {"rows": [row], "columns": columns}


def syncs(check: Check) -> dict[str, Any]:
    if check.device.type != "cuda":
        return {"skipped": "needs CUDA: torch.cuda.set_sync_debug_mode counts host-device synchronisations"}
    data = write_cifar100(check.scratch / "cifar-syncs", 2048, 256)
    counts = {}
    for images in (512, 2048):  # 4 and 16 steps of 128: the difference is what steps cost
        line = "train cifar100 --quiet --set model=resnet18_cifar --set sr_stage=3 --set epochs=1"
        line += f" --set val_fraction=0 --set limit_train={images} --set limit_test=256"
        args = line.split() + ["--data", str(data), "--out", str(check.scratch / f"syncs{images}")]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    assert srblock_main(args) == 0
            finally:
                torch.cuda.set_sync_debug_mode("default")
        found = [w for w in caught if "synchroniz" in str(w.message)]
        counts[images] = {
            "syncs": len(found),
            "where": sorted({f"{Path(w.filename).name}:{w.lineno}" for w in found}),
        }
    per_step = (counts[2048]["syncs"] - counts[512]["syncs"]) / ((2048 - 512) / 128)
    return {"syncs_per_training_step": per_step, "runs": counts}


def jpeg_decode(check: Check) -> dict[str, Any]:
    count, workers, batch = (32, [0], 8) if check.tiny else (1024, [8, 16], 64)
    train, _ = load_imagenet(write_jpegs(check.scratch / "jpegs", count))
    transform = imagenet_transform(True, 224)
    rows = []
    for n in workers:
        loader = make_file_loader(
            train.with_transform(transform), batch_size=batch, train=True, seed=0, num_workers=n
        )
        ips = images_per_second(loader, device=check.device)
        rows.append({"pipeline": "decode + augment in workers", "workers": n, "images_per_s": ips})
    loader = make_file_loader(
        train.with_transform(None, encoded=True),
        batch_size=batch,
        train=True,
        seed=0,
        num_workers=workers[0],
        collate_fn=collate_encoded,
    )
    ips = images_per_second(loader, transform, check.device)
    where = f"workers read bytes, batch decode + augment on {check.device.type}"
    rows.append({"pipeline": where, "workers": workers[0], "images_per_s": ips})
    return {"rows": rows, "images": count, "batch": batch}


def cuda_tests(check: Check) -> dict[str, Any]:
    """pytest -m cuda, verbose, into a log beside the report; a timeout keeps what finished."""
    if not torch.cuda.is_available():  # every test marked cuda would be skipped: seconds for nothing
        return {"skipped": "needs CUDA: the tests marked cuda run on a GPU"}
    log = check.out / "cuda_tests.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-m",
        "cuda",
        "-p",
        "no:cacheprovider",
        "tests/test_cuda.py",
    ]
    with log.open("w") as f:
        try:
            code = subprocess.run(
                command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=check.timeout(300), check=False
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    outcomes: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("tests/test_cuda.py::") and rest.split()[:1]:
            outcomes.setdefault(rest.split()[0], []).append(name.split("::", 1)[1])
    counts = {status: len(names) for status, names in outcomes.items()}
    if code is None or code not in (0, 5) or outcomes.get("FAILED") or outcomes.get("ERROR"):
        ended = "timed out" if code is None else f"exit {code}"
        raise RuntimeError(
            f"{ended}, {counts}; failed: {outcomes.get('FAILED', []) + outcomes.get('ERROR', [])}"
        )
    return {"counts": counts, "log": log.name}


def startup(check: Check) -> dict[str, Any]:
    """`srblock train --verbose` (ResNet18 + SR, CIFAR-100-shaped data, compiled with CUDA graphs on
    a GPU): launch to the first training step with inductor's caches cold, then warm."""
    train_images = 512 if check.tiny else 50_000
    data = write_cifar100(check.scratch / "cifar-startup", train_images, 512)
    rows = run_times.startup_rows(
        lambda args, timeout, env: run_srblock(check, args, timeout, env),
        data,
        check.scratch,
        model="resnet10s_cifar" if check.tiny else "resnet18_cifar",
        compile_mode=None if check.device.type == "cpu" else "reduce-overhead",
    )
    columns = ["caches", "compile", "first_step_s", "wall_s", "breakdown"]
    return {
        "rows": rows,
        "columns": columns,
        "note": f"{train_images:,} training images; target <= 15 s warm",
    }


def end_to_end(check: Check) -> dict[str, Any]:
    """The CIFAR-100 recipe (ResNet18 + SR (3, 2), its defaults: compile auto) for 200 epochs end to
    end, one seed, then 5 seeds stacked; a row the budget cannot hold is skipped, not estimated."""
    train_images, epochs = (192, 1) if check.tiny else (50_000, 200)
    data = write_cifar100(check.scratch / "cifar-e2e", train_images, 64 if check.tiny else 10_000)
    if not check.tiny and check.left() < 300:
        return {"skipped": "the time budget is spent; run it alone: --only end_to_end --budget 590"}
    rows = run_times.end_to_end_rows(
        lambda args, timeout, env: run_srblock(check, args, timeout, env),
        data,
        check.scratch,
        model="resnet10s_cifar" if check.tiny else "resnet18_cifar",
        epochs=epochs,
        stack=2 if check.tiny else 5,
        timeout=check.left() / 2,
        alone=not check.tiny,  # (tiny: one run alone is what the other sections already launch)
    )
    return {"rows": rows, "note": "targets: one seed under 4 minutes, 5 seeds stacked under 10"}


SECTIONS: dict[str, Callable[[Check], dict[str, Any]]] = {  # in the order they run: the most wanted first
    "block_profile": block_profile,
    "paper_overhead_compiled": paper_overhead_compiled,
    "paper_overhead": paper_overhead,
    "step_profile": step_profile,
    "r18_throughput": r18_throughput,
    "cuda_tests": cuda_tests,
    "step_throughput": step_throughput,
    "parallel": parallel,
    "deeplabv3": deeplabv3,
    "syncs": syncs,
    "jpeg_decode": jpeg_decode,
    "startup": startup,
    "end_to_end": end_to_end,
}


def machine() -> dict[str, Any]:
    import lightning
    import timm
    import torchvision

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return {
        "gpu": device,
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
    }


def report_md(report: dict[str, Any]) -> str:
    lines = [
        f"# gpu_check: {report['machine']['gpu']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Date: {report['date']}",
        "",
        render([report["machine"]], list(report["machine"])),
        "",
    ]
    for name, section in report["sections"].items():
        lines += [f"## {name}: {section['status']} ({section['seconds']:.0f} s)", ""]
        if section["status"] != "ok":
            lines += [f"    {section.get('error', section.get('reason', ''))}", ""]
            continue
        result = section["result"]
        rows = result.get("rows")
        if rows:
            columns = result.get("columns") or [
                c for c in rows[0] if not isinstance(rows[0][c], (list, dict))
            ]
            lines += [render(rows, columns), ""]
        lines += [f"- {k}: {v}" for k, v in result.items() if k not in ("rows", "columns")] + [""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument(
        "--tiny", action="store_true", help="every section at toy size (a CPU test in under 2 minutes)"
    )
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    p.add_argument(
        "--fail", nargs="+", choices=SECTIONS, help="make these sections fail (to test the report)"
    )
    p.add_argument(
        "--r18-variants",
        nargs="+",
        choices=R18_VARIANTS,
        default=R18_VARIANTS,
        help="r18_throughput's variants to run (default: all)",
    )
    p.add_argument(
        "--parallel-variants",
        nargs="+",
        choices=list(PARALLEL_VARIANTS),
        default=list(PARALLEL_VARIANTS),
        help="parallel's variants: runs at once as processes, stackN as one stacked network, "
        "-graphs compiled with CUDA graphs (default: all)",
    )
    p.add_argument(
        "--block-variants",
        nargs="+",
        choices=block_variants.VARIANTS,
        default=["lean"],
        help="the SR forwards that block_profile and paper_overhead(_compiled) time "
        "(benchmarks/block_variants.py; default: lean, the library's)",
    )
    p.add_argument(
        "--compiled-blocks",
        nargs="+",
        choices=block_variants.VARIANTS,
        default=["lean"],
        help="the SR forwards paper_overhead_compiled times, in order while the budget lasts (default: lean)",
    )
    p.add_argument(
        "--compiled-precisions",
        nargs="+",
        choices=("float32", "bf16"),
        default=["float32"],
        help="paper_overhead_compiled's precisions: float32, bf16 (with channels_last) (default: float32)",
    )
    p.add_argument("--budget", type=float, default=540, help="seconds for all sections (default: 540)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "sections": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        check = Check(args, Path(tmp))
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            started = time.time()
            entry: dict[str, Any]
            if check.left() < 15:
                entry = {"status": "skipped", "reason": f"the {args.budget:.0f} s budget is spent"}
            else:
                try:
                    if name in check.fail:
                        raise RuntimeError(f"forced failure (--fail {name})")
                    result = section(check)
                    entry = (
                        {"status": "skipped", "reason": result["skipped"]}
                        if "skipped" in result
                        else {"status": "ok", "result": result}
                    )
                except Exception as err:  # one failing part never stops the others
                    entry = {
                        "status": "failed",
                        "error": f"{type(err).__name__}: {err}",
                        "traceback": traceback.format_exc()[-4000:],
                    }
            entry["seconds"] = time.time() - started
            report["sections"][name] = entry
            print(f"{name}: {entry['status']} ({entry['seconds']:.0f} s)", flush=True)
            (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu_check.md").write_text(report_md(report))
    print(report_md(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
