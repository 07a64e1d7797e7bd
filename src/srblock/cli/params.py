"""`srblock params`: parameter count and SR overhead of a configuration or of the paper's tables."""

from __future__ import annotations

import argparse

from ..models.layers import ATTN_LAYERS, REG_LAYERS
from ..params import PARAM_COLUMNS, TABLE_COLUMNS, TABLES, param_count, table_rows
from ..render import FORMATS, render
from .common import at_least, stage_arg

EPILOG = """\
OH is the paper's: parameters added to the plain model (attention and SR together), in % of it.
sr_oh_pct is the SR blocks' share alone, from Eq. 1.

examples:
  srblock params --table cifar100                    # every row of the paper's Tables I and II
  srblock params --table imagenet --format csv
  srblock params --model resnet18_cifar --num-classes 100 --attn se --sr-stage 3 --sr-blocks 2
  srblock params --model resnet50 --sr-stage 3 --sr-blocks 10 --sr-hidden 16 --input-size 3 224 224
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
    p.add_argument("--num-classes", type=at_least(1), metavar="N", help="classes (default: the model's)")
    p.add_argument("--in-chans", type=at_least(1), metavar="N", help="input channels (default: 3)")
    p.add_argument("--attn", choices=[a for a in ATTN_LAYERS if a], help="SE or CBAM in every block")
    p.add_argument("--reg", choices=[r for r in REG_LAYERS if r], help="regulariser (adds no parameters)")
    p.add_argument("--sr-stage", type=stage_arg, metavar="M", help="put an SR block after stage M")
    p.add_argument(
        "--sr-blocks", type=at_least(1), metavar="P", help="memory blocks (default: the model's own, else 4)"
    )
    p.add_argument(
        "--sr-hidden", type=at_least(1), default=8, metavar="H", help="hidden neurons (default: 8)"
    )
    p.add_argument(
        "--sr-squeeze", type=at_least(1), default=1, metavar="CS", help="squeezed channels (default: 1)"
    )
    p.add_argument(
        "--input-size",
        type=at_least(1),
        nargs=3,
        metavar=("C", "H", "W"),
        help="input size that sizes the memory (default: the model's, 3 32 32 for CIFAR models)",
    )
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default: md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.table:
        print(render(table_rows(args.table), TABLE_COLUMNS, args.format))
        return 0
    if not args.model:
        raise ValueError("give --model NAME (see `srblock params --help`) or --table " + "|".join(TABLES))
    row = param_count(
        args.model,
        num_classes=args.num_classes,
        in_chans=args.in_chans,
        attn=args.attn,
        reg=args.reg,
        sr_stage=args.sr_stage,
        sr_blocks=args.sr_blocks,
        sr_hidden=args.sr_hidden,
        sr_squeeze=args.sr_squeeze,
        input_size=args.input_size,
    )
    print(render([row], PARAM_COLUMNS, args.format))
    return 0
