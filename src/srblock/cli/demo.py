"""`srblock demo`: offline, real data: a small network with and without an SR block on Fashion-MNIST.

`--task classify` (default) trains a small ResNet on the images; `--task seg` a tiny FCN on
canvases of pasted Fashion-MNIST items with per-pixel labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import startup
from ..keys import make_config
from ..render import render
from ..run_folder import RunFolder
from .common import add_device_args

EPILOG = """\
Trains resnet10s_cifar (one BasicBlock per stage, widths 16-128) on Fashion-MNIST (the Debian
package dataset-fashion-mnist, or --data) with the fashion_mnist recipe, once plain and once with
an SR block after stage 3 (P = 4, h = 8), and prints their test accuracy, parameters and SR
overhead. 3 to 9 minutes on 2 CPU cores; finished runs are reused and a stopped
run continues where it stopped.

With --task seg: fcn_resnet10s (the same small ResNet as an output-stride-8 FCN with an auxiliary
head) on 64x64 canvases of 2-3 Fashion-MNIST items, every pixel labelled with its item's class or
background (11 classes), with the fashion_mnist_seg recipe (600 iterations, poly lr), once plain
and once with an SR block after stage 2 (P = 4); prints mIoU and mAcc (whole image and
multi-scale + flip). 1.5 to 3 minutes on 2 CPU cores.

examples:
  srblock demo
  srblock demo --task seg
  srblock demo --tiny            # 1 epoch on 1,000 images: a smoke test in seconds
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="offline demo: Fashion-MNIST with and without an SR block",
        epilog=EPILOG,
        description="Train a small ResNet with and without an SR block on Fashion-MNIST.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        choices=("classify", "seg"),
        default="classify",
        help="classify: Fashion-MNIST images (default); seg: Fashion-MNIST canvases, per-pixel labels",
    )
    p.add_argument(
        "--tiny", action="store_true", help="a smoke test in seconds (1 epoch or 20 iterations, few images)"
    )
    p.add_argument(
        "--data", metavar="DIR", help="folder with Fashion-MNIST's IDX files (default: the Debian package's)"
    )
    p.add_argument("--out", metavar="DIR", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--verbose", action="store_true", help="print where the time went before each first training step"
    )
    add_device_args(p, several=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train.jobs import Job, run_jobs  # the training stack loads for the commands that train

    if args.task == "seg":
        recipe, name, sr = "fashion_mnist_seg", "fcn_resnet10s", dict(sr_stage=2)
        tiny = {"iterations": 20, "eval_interval": 20, "limit_train": 320, "limit_test": 40}
        columns = ["model", "test_miou", "test_macc", "test_miou_ms", "test_macc_ms"]
    else:
        recipe, name, sr = "fashion_mnist", "resnet10s_cifar", dict(sr_stage=3)
        tiny = {"epochs": 1, "limit_train": 1000, "limit_test": 500}
        columns = ["model", "test_acc", "test_acc_bypassed", "sr_mem_ratio"]  # what the block does
    data = {"data_dir": str(Path(args.data).expanduser().resolve())} if args.data else {}
    configs = {
        name: make_config(recipe, {**(tiny if args.tiny else {}), **data}),
        f"{name} + SR": make_config(recipe, {**(tiny if args.tiny else {}), **data, **sr}),
    }
    group = ("demo-seg" if args.task == "seg" else "demo") + ("-tiny" if args.tiny else "")
    labels = {RunFolder.of(args.out, group, cfg).path: label for label, cfg in configs.items()}
    jobs = [Job(configs[label], folder) for folder, label in labels.items()]

    def table(outcomes: list) -> str:
        rows = []
        for o in outcomes:
            row = {**o.result, "model": labels[o.job.folder], "minutes": o.result["wall_time_s"] / 60}
            row["folder"] = str(o.job.folder)
            if row.get("sr_mem_ratio") is not None:  # of order 1e-3: two significant digits
                row["sr_mem_ratio"] = f"{row['sr_mem_ratio']:.2g}"
            rows.append(row)
        table = render(rows, columns + ["params", "sr_params", "sr_oh_pct", "minutes", "folder"])
        where = (
            f"run folders (config, metrics.csv, checkpoints, result.json) are under {Path(args.out) / group}"
        )
        return f"{table}\n{where}"

    startup.verbose = args.verbose
    run_jobs(jobs, resume=True, quiet=args.quiet, accelerator=args.accelerator, summary=table)
    return 0
