"""`srblock analyze`: what a run's SR blocks learned, as figures and JSON in RUN_DIR/analysis/."""

from __future__ import annotations

import argparse

from .common import at_least, device_arg, note_if_unfinished
from .model_flags import device

EPILOG = """\
Writes RUN_DIR/analysis/: weights.json and weights_<stage>.png (mean ± std softmax weight of every
memory block, per class and over all classes), features.json and features_<stage>.png (channel
means before and after the block, and their difference), memory.json and memory_<stage>.png (the
memory's channel means, P x C, and spatial means), separation_<stage>.png (weight entropy per
class, nearest-centroid accuracy from the weights alone), ablation.json and ablation.png (test
accuracy with every SR block bypassed, and each alone).

examples:
  srblock analyze runs/demo/resnet10s_cifar-sr3p4h8/seed0
  srblock analyze runs/cifar100/resnet18_cifar-sr3p2h8/seed0 --data ~/data --classes apple 7 tulip
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="figures and numbers of what the SR memory learned",
        epilog=EPILOG,
        description="Analyse the best checkpoint of a run (the paper's section IV-D).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", help="a run folder: OUT/<recipe>/<configuration>/seed<k>")
    p.add_argument(
        "--classes",
        nargs="+",
        metavar="C",
        help="class names or indices (default: five spread over the labels)",
    )
    p.add_argument(
        "--per-class", type=at_least(1), default=50, metavar="N", help="images per class (default: 50)"
    )
    p.add_argument("--split", choices=SPLITS, default="val", help="which images (default: val)")
    p.add_argument("--data", metavar="DIR", help="the data folder the run was trained from")
    p.add_argument(
        "--device",
        type=device_arg,
        default=None,
        help="where the model runs: cpu or cuda[:N] (default: cuda where there is one, else cpu)",
    )
    p.set_defaults(run=run)


SPLITS = ("val", "test", "train")  # what analysis.analyze reads (a test keeps the two equal)


def run(args: argparse.Namespace) -> int:
    from ..analysis import run_analysis  # matplotlib and the analyses load for the command that needs them

    note_if_unfinished(args.run_dir, "is analysed")
    paths = run_analysis(
        args.run_dir, args.classes, args.per_class, args.split, args.data, device=device(args)
    )
    for path in paths.values():
        print(path)
    return 0
