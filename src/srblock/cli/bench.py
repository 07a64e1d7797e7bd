"""`srblock bench`: a model with SR against the same model without, side by side."""

from __future__ import annotations

import argparse
import json

from ..config import COMPILE_MODES
from ..render import render
from .common import at_least, refuse_flags
from .model_flags import add_model_flags, add_run_args, build_from_args, device, model_dests

EPILOG = """\
Both models run interleaved in one process (A B B A ..., after a warm-up, CUDA synchronised);
the overhead is the median of the paired ratios with a bootstrap 95% confidence interval (from
10 pairs on; --repeats fewer leaves it blank). MACs (multiply-adds) come from
torch.utils.flop_counter.

examples:
  srblock bench --model resnet18_cifar --sr-stage 3 --sr-memory-blocks 4 --device cpu --input-size 3 32 32
  srblock bench --model resnet50_cifar --sr-stage 3 --sr-memory-blocks 2 --batch-size 128 --train
  srblock bench --model resnet50 --sr-stage 3 --sr-memory-blocks 10 --sr-hidden 16 --onnx   # onnxruntime
  srblock bench --paper --device cuda        # the paper's three settings, its numbers beside ours
  srblock bench --paper --device cuda --compile reduce-overhead   # the same, compiled with CUDA graphs
  srblock bench --paper --profile            # ops and bytes of one SR forward and backward (CPU too)
  srblock bench --model deeplabv3_r50_d8 --sr-stage 2 --input-size 3 512 1024 --batch-size 2 --train \
        --precision bf16-mixed --channels-last --device cuda   # Cityscapes DeepLabv3 + SR iterations
"""

COLUMNS = [
    "setting",
    "mode",
    "batch",
    "device",
    "TIMING",
    "paper_plain_ms",
    "paper_sr_ms",
    "paper_overhead_pct",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="latency, MACs and parameters with and without SR, side by side",
        epilog=EPILOG,
        description="Measure a model with SR blocks against the same model without.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_flags(p)
    add_run_args(p, batch=1)
    p.add_argument("--paper", action="store_true", help="the paper's three settings (its section III-E)")
    p.add_argument("--train", action="store_true", help="time a training step instead of inference")
    p.add_argument("--repeats", type=at_least(1), default=50, metavar="N", help="timed pairs (default: 50)")
    p.add_argument(
        "--warmup", type=at_least(0), default=5, metavar="N", help="untimed pairs first (default: 5)"
    )
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        metavar="MODE",
        help=f"torch.compile both models in this mode ({', '.join(COMPILE_MODES)}); "
        "reduce-overhead uses CUDA graphs",
    )
    p.add_argument("--onnx", action="store_true", help="time the ONNX exports with onnxruntime (CPU) instead")
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing: the ops (on CUDA also kernels) and bytes one SR forward and backward "
        "run and move, float32 and bf16, contiguous and channels_last",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


PROFILE_COLUMNS = [
    "setting",
    "variant",
    "batch",
    "forward_ops",
    "backward_ops",
    "forward_kernels",
    "backward_kernels",
    "forward_MB_moved",
    "backward_MB_moved",
    "forward_kernel_us",
    "backward_kernel_us",
]


def profile_rows(args: argparse.Namespace) -> list[dict]:
    from ..factory import create_model
    from ..paper_latency import PAPER_SETTINGS
    from ..profile import block_costs

    """`--profile`: the block of --model (or of each of the paper's settings) at --batch."""
    if args.paper:
        settings = [
            (s.name, s.model, s.input_size, s.batch) for s in PAPER_SETTINGS if s.train or s.batch < 128
        ]
        models = [(name, create_model(**kw), size, batch) for name, kw, size, batch in settings]
    else:
        model, input_size = build_from_args(args)
        models = [(args.model, model, input_size, args.batch_size)]
    rows = []
    for name, model, input_size, batch in models:
        rows += [{"setting": name, **row} for row in block_costs(model, input_size, batch, device(args))]
    return rows


def refuse_unused(args: argparse.Namespace) -> None:
    """Each mode's flags apply or are refused: --paper brings its own models and batches,
    --profile counts one forward and backward in both precisions, --onnx times onnxruntime on
    the CPU."""
    if args.paper:
        refuse_flags(args, [*model_dests(), "batch_size", "train"], "with --paper (its three settings)")
    if args.profile:
        timing = ["repeats", "warmup", "compile", "channels_last", "train", "onnx", "precision"]
        refuse_flags(args, timing, "with --profile (it counts ops and bytes, float32 and bf16)")
    if args.onnx:
        elsewhere = ["device"] if args.device not in (None, "cpu") else []
        refuse_flags(
            args, ["compile", "train", "paper", "precision", "channels_last", *elsewhere],
            "with --onnx (onnxruntime inference in float32 on the CPU)",
        )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch  # (what a command uses, imported as it runs: help answers at once)

    from ..bench import TIMING_COLUMNS, bench_onnx_pair, bench_pair
    from ..paper_latency import bench_paper

    columns = [c for name in COLUMNS for c in (TIMING_COLUMNS if name == "TIMING" else (name,))]
    refuse_unused(args)
    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else None
    if args.profile:
        rows = profile_rows(args)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(render(rows, [c for c in PROFILE_COLUMNS if any(r.get(c) is not None for r in rows)]))
        return 0
    if args.paper:
        rows = bench_paper(
            device(args),
            repeats=args.repeats,
            warmup=args.warmup,
            dtype=dtype,
            channels_last=args.channels_last,
            compile=args.compile,
        )
    else:
        model, input_size = build_from_args(args)
        if args.onnx:
            row = bench_onnx_pair(
                model, input_size, batch=args.batch_size, repeats=args.repeats, warmup=args.warmup
            )
        else:
            row = bench_pair(
                model,
                input_size,
                batch=args.batch_size,
                train=args.train,
                device=device(args),
                repeats=args.repeats,
                warmup=args.warmup,
                dtype=dtype,
                channels_last=args.channels_last,
                compile=args.compile,
            )
        rows = [{"setting": args.model, **row}]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render(rows, [c for c in columns if any(r.get(c) is not None for r in rows)]))
    return 0
