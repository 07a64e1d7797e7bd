"""`srblock params`: parameter count and SR overhead of a configuration or of the paper's tables."""

from __future__ import annotations

import argparse

from ..recipes import TABLES
from ..render import FORMATS, render
from .common import refuse_flags
from .model_flags import add_model_flags, input_size, model_dests, sr_spec

EPILOG = """\
OH is the paper's: parameters added to the plain model (attention and SR together), in % of it.
sr_oh_pct is the SR blocks' share alone, from Eq. 1.

examples:
  srblock params --table cifar100                    # every row of the paper's Tables I and II
  srblock params --table imagenet --format csv
  srblock params --model resnet18_cifar --num-classes 100 --attn se --sr-stage 3 --sr-memory-blocks 2
  srblock params --model resnet50 --sr-stage 3 --sr-memory-blocks 10 --sr-hidden 16 --input-size 3 224 224
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "params",
        help="parameter count and SR overhead of a model or of the paper's tables",
        description="Parameter count and SR overhead (OH) of a model configuration, or of every "
        "row of one of the paper's tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", metavar="NAME", help="a model of `srblock.list_models()`")
    what.add_argument("--table", choices=TABLES, help="the paper's tables for this data set")
    add_model_flags(p, with_model=False)
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default: md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models import model_facts
    from ..params import PARAM_COLUMNS, TABLE_COLUMNS, param_count, table_rows  # (torch: once it runs)

    if args.table:
        refuse_flags(args, model_dests(), "with --table (its rows are the paper's models): leave them out")
        print(render(table_rows(args.table), TABLE_COLUMNS, args.format))
        return 0
    if not args.model:
        raise ValueError("give --model NAME (see `srblock params --help`) or --table " + "|".join(TABLES))
    size = None  # the model's own, unless --input-size (or the old --size, --in-chans) says
    if args.input_size or getattr(args, "input_hw", None) or args.in_chans:
        size = input_size(args, model_facts(args.model).input_size or (3, 224, 224))
    row = param_count(
        args.model,
        num_classes=args.num_classes,
        in_chans=size[0] if size else None,
        attn=args.attn,
        reg=args.reg,
        sr_stage=args.sr_stage,
        sr=sr_spec(args),
        input_size=size,
    )
    print(render([row], PARAM_COLUMNS, args.format))
    return 0
