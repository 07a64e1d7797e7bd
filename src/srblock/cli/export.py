"""`srblock export`: a model with SR blocks as ONNX, checked with onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import note_if_unfinished, refuse_flags
from .model_flags import add_model_flags, build_from_args, model_dests

EPILOG = """\
examples:
  srblock export --model resnet18_cifar --sr-stage 3 --sr-memory-blocks 4 --onnx r18_sr.onnx
  srblock export --model timm:convnext_atto --sr-stage 3 --onnx convnext_sr.onnx --dynamic-batch
  srblock export runs/demo/resnet10s_cifar-sr3p4h8/seed0 --onnx demo.onnx
  srblock export runs/demo-seg/fcn_resnet10s-sr2p4h8/seed0 --onnx seg.onnx   # per-pixel logits
  srblock export runs/demo/resnet10s_cifar-sr3p4h8/seed0 --hf shared/   # timm's hub format

After writing, onnxruntime runs the file on random inputs and the largest difference from
PyTorch's output is printed (it must stay under 1e-4). --hf writes model.safetensors and
config.json, which timm.create_model("local-dir:DIR", pretrained=True) and srblock predict read.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model with SR blocks to ONNX",
        epilog=EPILOG,
        description="Export a model (or a run's best checkpoint) to ONNX and check it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", nargs="?", help="a run folder: exports its best checkpoint")
    p.add_argument("--onnx", metavar="FILE", help="where to write the .onnx file")
    p.add_argument(
        "--hf",
        metavar="DIR",
        help="write a run's weights and config into DIR in timm's hub format (model.safetensors, "
        "config.json)",
    )
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    add_model_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..busy import working
    from ..export import export_hf, export_onnx, onnx_max_diff  # (torch: only once it runs)
    from ..hub import HUB_CONFIG, HUB_WEIGHTS
    from ..run_model import trained_model

    if bool(args.onnx) == bool(args.hf):
        raise ValueError("give --onnx FILE or --hf DIR (one of them)")
    if args.run_dir:
        why = "with a run folder, whose model is its own (they describe a new one): give one or the other"
        refuse_flags(args, model_dests(), why)
    if args.hf:
        if not args.run_dir:
            raise ValueError("--hf exports a run's trained weights: give its run folder (RUN_DIR --hf DIR)")
        refuse_flags(args, ["dynamic_batch"], "with --hf (an ONNX input's batch): leave it out")
        note_if_unfinished(args.run_dir, "is exported")
        out = export_hf(args.run_dir, args.hf)
        print(
            f"wrote {out / HUB_WEIGHTS} and {out / HUB_CONFIG}; load it with timm.create_model("
            f"'local-dir:{out}', pretrained=True) after `import srblock`, or srblock predict {out} IMAGES"
        )
        return 0
    if args.run_dir:
        model, _, input_size = trained_model(args.run_dir)
        note_if_unfinished(args.run_dir, "is exported")
    else:
        model, input_size = build_from_args(args)
    steps = working(["export", "check"], "ONNX: exporting, then checking it with onnxruntime")
    path = Path(args.onnx)
    for step in steps:  # (a bar where the two take more than 2 s)
        if step == "export":
            path = export_onnx(model, input_size, path, dynamic_batch=args.dynamic_batch)
        else:
            diff = onnx_max_diff(model, path, input_size, batch=3 if args.dynamic_batch else 1)
    print(
        f"wrote {path} (input x: {'N' if args.dynamic_batch else 1} x {' x '.join(map(str, input_size))}); "
        f"onnxruntime vs PyTorch max |diff| = {diff:.2e}"
    )
    if diff > 1e-4:
        raise ValueError(
            f"onnxruntime's output differs from PyTorch's by {diff:.2e} (> 1e-4): please report this model"
        )
    return 0
