"""`srblock demo`: offline, real data: a small network with and without an SR block on Fashion-MNIST.

`--task classify` (default) trains a small ResNet on the images; `--task seg` a tiny FCN on
canvases of pasted Fashion-MNIST items with per-pixel labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..render import render
from ..train import make_config, run_training
from ..train.runs import RESULT_FILE, is_finished, run_dir
from .common import make_fabric

EPILOG = """\
Trains resnet10s_cifar (one BasicBlock per stage, widths 16-128) on Fashion-MNIST (the Debian
package dataset-fashion-mnist, or --data) with the fashion_mnist recipe, once plain and once with
an SR block after stage 3 (P = 4, h = 8), and prints their test accuracy, parameters and SR
overhead. 7 to 9 minutes on 2 CPU cores; finished runs are reused and a stopped
run continues where it stopped.

With --task seg: fcn_resnet10s (the same small ResNet as an output-stride-8 FCN with an auxiliary
head) on 64x64 canvases of 2-3 Fashion-MNIST items, every pixel labelled with its item's class or
background (11 classes), with the fashion_mnist_seg recipe (600 iterations, poly lr), once plain
and once with an SR block after stage 2 (P = 4); prints mIoU and mAcc (whole image and
multi-scale + flip). About 3 minutes on 2 CPU cores.

examples:
  srblock demo
  srblock demo --task seg
  srblock demo --tiny            # 1 epoch on 1,000 images: a smoke test in seconds
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: Fashion-MNIST with and without an SR block", epilog=EPILOG,
                       description="Train a small ResNet with and without an SR block on Fashion-MNIST.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("classify", "seg"), default="classify",
                   help="classify: Fashion-MNIST images (default); seg: Fashion-MNIST canvases, per-pixel labels")
    p.add_argument("--tiny", action="store_true", help="a smoke test in seconds (1 epoch or 20 iterations, few images)")
    p.add_argument("--data", metavar="DIR", help="folder with Fashion-MNIST's IDX files (default: the Debian package's)")
    p.add_argument("--out", metavar="DIR", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"))
    p.set_defaults(run=run, devices="1", num_nodes=1)


def run(args: argparse.Namespace) -> int:
    if args.task == "seg":
        recipe, name, sr = "fashion_mnist_seg", "fcn_resnet10s", dict(sr_stage=2, sr_blocks=4)
        tiny = {"iterations": 20, "eval_interval": 10, "limit_train": 320, "limit_test": 100}
        columns = ["model", "test_miou", "test_macc", "test_miou_ms", "test_macc_ms"]
    else:
        recipe, name, sr = "fashion_mnist", "resnet10s_cifar", dict(sr_stage=3, sr_blocks=4)
        tiny = {"epochs": 1, "limit_train": 1000, "limit_test": 500}
        columns = ["model", "test_acc"]
    plain = make_config(recipe, tiny if args.tiny else {})
    configs = {name: plain, f"{name} + SR": dataclasses.replace(plain, **sr)}
    group = ("demo-seg" if args.task == "seg" else "demo") + ("-tiny" if args.tiny else "")
    fabric = make_fabric(args, plain.precision)
    rows = []
    for label, cfg in configs.items():
        folder = run_dir(Path(args.out), group, cfg)
        if is_finished(folder):
            fabric.print(f"{folder} is finished: reusing its result (delete it to train again)")
            result = json.loads((folder / RESULT_FILE).read_text())
        else:
            result = run_training(fabric, cfg, folder, data_root=args.data, resume=True, quiet=args.quiet)
        rows.append({"model": label, **result, "minutes": result["wall_time_s"] / 60, "folder": str(folder)})
    fabric.print(render(rows, columns + ["params", "sr_params", "sr_oh_pct", "minutes", "folder"]))
    fabric.print(f"run folders (config, metrics.csv, checkpoints, result.json) are under {Path(args.out) / group}")
    return 0
