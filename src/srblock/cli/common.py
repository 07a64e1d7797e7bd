"""Flags and set-up shared by the commands that train: devices, precision, output."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from lightning.fabric import Fabric

from ..train.config import CHOICES, TrainConfig


def add_training_args(p: argparse.ArgumentParser, out_default: str = "runs") -> None:
    p.add_argument("--data", metavar="DIR", help="folder holding the data set (see the README)")
    p.add_argument("--out", metavar="DIR", default=out_default, help=f"where run folders go (default: {out_default})")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", help="train once per seed")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=0.05 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("devices (Lightning Fabric)")
    g.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"))
    g.add_argument("--devices", default="1", help="devices per node: a number, or 'auto' (default: 1)")
    g.add_argument("--num-nodes", type=int, default=1, metavar="N", help="nodes (default: 1)")
    g.add_argument("--precision", choices=CHOICES["precision"], help="default: the recipe's (auto: bf16-mixed on GPU, 32-true on CPU)")


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    import torch

    on_gpu = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def make_fabric(args: argparse.Namespace, precision: str) -> Fabric:
    """A launched Fabric: one process per device (DDP) when there are several."""
    devices = args.devices if args.devices == "auto" else int(args.devices)
    several = args.num_nodes > 1 or devices == "auto" or devices > 1
    fabric = Fabric(
        accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes,
        strategy="ddp" if several else "auto", precision=resolve_precision(precision, args.accelerator),
    )
    fabric.launch()
    return fabric


def with_seeds(cfg: TrainConfig, seeds: list[int] | None) -> list[TrainConfig]:
    return [dataclasses.replace(cfg, seed=s) for s in (seeds or [cfg.seed])]


def group_name(recipe: str) -> str:
    """The folder under --out for a recipe: its name, or a YAML file's stem."""
    return Path(recipe).stem if os.sep in recipe or recipe.endswith((".yaml", ".yml")) else recipe
