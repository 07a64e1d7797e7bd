"""Flags and set-up shared by the commands that train: devices, precision, output."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from lightning.fabric import Fabric

from ..train.config import CHOICES, KEYS, TrainConfig, parse_hw, parse_set


def add_training_args(p: argparse.ArgumentParser, out_default: str = "runs") -> None:
    p.add_argument("--data", metavar="DIR", help="folder holding the data set (see the README)")
    p.add_argument("--out", metavar="DIR", default=out_default, help=f"where run folders go (default: {out_default})")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", help="train once per seed")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a recipe field, e.g. --set lr=0.05 (repeatable); fields: {', '.join(KEYS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("devices (Lightning Fabric)")
    g.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"))
    g.add_argument("--devices", default="1", help="devices per node: a number, or 'auto' (default: 1)")
    g.add_argument("--num-nodes", type=int, default=1, metavar="N", help="nodes (default: 1)")
    g.add_argument("--precision", choices=CHOICES["precision"], help="default: the recipe's (auto: bf16-mixed on GPU, 32-true on CPU)")


def training_overrides(args: argparse.Namespace) -> dict:
    """The recipe fields the command line sets: every --set, and --precision."""
    overrides = parse_set(args.sets)
    if args.precision:
        overrides["precision"] = args.precision
    return overrides


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


def stage_arg(text: str) -> int | str:
    """A stage: 1-based number, or a module name such as features.6."""
    return int(text) if text.isdigit() else text


def size_arg(text: str) -> tuple[int, int]:
    """An input size: one number (square) or HxW."""
    try:
        return parse_hw(text, "--size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model and the SR/attention flags of `bench` and `export`."""
    p.add_argument("--model", metavar="NAME", help="a zoo model, or tv:NAME (torchvision) or timm:NAME")
    p.add_argument("--num-classes", type=int, metavar="N", help="classes (default: the model's)")
    p.add_argument("--attn", choices=("se", "cbam"), help="SE or CBAM in every block (zoo models)")
    p.add_argument("--sr-stage", type=stage_arg, metavar="M", help="SR block after stage M (a number or a module name)")
    p.add_argument("--sr-blocks", type=int, metavar="P", help="memory blocks (default: the model's, else 4)")
    p.add_argument("--sr-hidden", type=int, default=8, metavar="H", help="hidden neurons (default: 8)")
    p.add_argument("--size", type=size_arg, metavar="S", help="input size: S or HxW, e.g. 512x1024 (default: the model's)")


def build_from_args(args: argparse.Namespace):
    """(model, input_size) from --model and friends: the zoo, torchvision or timm, with SR."""
    import timm
    import torchvision

    from ..insert import add_sr
    from ..registry import create_model

    if not args.model:
        raise ValueError("give --model NAME (a zoo model, tv:NAME or timm:NAME)")
    kind, _, name = args.model.rpartition(":")
    classes = {"num_classes": args.num_classes} if args.num_classes else {}
    if kind == "tv":
        try:
            model = torchvision.models.get_model(name, **classes)
        except ValueError:
            raise ValueError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()") from None
        default = (3, 224, 224)
    elif kind == "timm":
        if name not in timm.list_models():
            raise ValueError(f"unknown timm model {name!r}; see timm.list_models()")
        model = timm.create_model(name, **classes)
        default = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    elif kind == "":
        model = create_model(name, attn=args.attn, **classes)
        default = tuple(model.default_input_size)
    else:
        raise ValueError(f"unknown model source {kind!r}: write NAME, tv:NAME or timm:NAME")
    input_size = (default[0], *args.size) if args.size else default
    if args.sr_stage is not None:
        add_sr(model, args.sr_stage, memory_blocks=args.sr_blocks, hidden=args.sr_hidden, input_size=input_size)
    return model, input_size
