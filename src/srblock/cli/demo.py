"""`srblock demo`: offline, real data: a small ResNet with and without an SR block on Fashion-MNIST."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..render import render
from ..train import make_config, train_run
from ..train.runs import RESULT_FILE, is_finished, run_dir
from .common import make_fabric

EPILOG = """\
Trains resnet10s_cifar (one BasicBlock per stage, widths 16-128) on Fashion-MNIST (the Debian
package dataset-fashion-mnist, or --data) with the fashion_mnist recipe, once plain and once with
an SR block after stage 3 (P = 4, h = 8), and prints their test accuracy, parameters and SR
overhead. About 9 minutes on 2 CPU cores; finished runs are reused and a stopped
run continues where it stopped.

examples:
  srblock demo
  srblock demo --tiny            # 1 epoch on 1,000 images: a smoke test in seconds
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: Fashion-MNIST with and without an SR block", epilog=EPILOG,
                       description="Train a small ResNet with and without an SR block on Fashion-MNIST.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="1 epoch on 1,000 training and 500 test images")
    p.add_argument("--data", metavar="DIR", help="folder with Fashion-MNIST's IDX files (default: the Debian package's)")
    p.add_argument("--out", metavar="DIR", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"))
    p.set_defaults(run=run, devices="1", num_nodes=1)


def run(args: argparse.Namespace) -> int:
    overrides = {"epochs": 1, "limit_train": 1000, "limit_test": 500} if args.tiny else {}
    plain = make_config("fashion_mnist", overrides)
    configs = {"resnet10s_cifar": plain, "resnet10s_cifar + SR": dataclasses.replace(plain, sr_stage=3, sr_blocks=4)}
    group = "demo-tiny" if args.tiny else "demo"
    fabric = make_fabric(args, plain.precision)
    rows = []
    for name, cfg in configs.items():
        folder = run_dir(Path(args.out), group, cfg)
        if is_finished(folder):
            fabric.print(f"{folder} is finished: reusing its result (delete it to train again)")
            result = json.loads((folder / RESULT_FILE).read_text())
        else:
            result = train_run(fabric, cfg, folder, data_root=args.data, resume=True, quiet=args.quiet)
        rows.append({"model": name, "test_acc": result["test_acc"], "params": result["params"],
                     "sr_params": result["sr_params"], "sr_oh_pct": result["sr_oh_pct"],
                     "minutes": result["wall_time_s"] / 60, "folder": str(folder)})
    fabric.print(render(rows, ["model", "test_acc", "params", "sr_params", "sr_oh_pct", "minutes", "folder"]))
    fabric.print(f"run folders (config, metrics.csv, checkpoints, result.json) are under {Path(args.out) / group}")
    return 0
