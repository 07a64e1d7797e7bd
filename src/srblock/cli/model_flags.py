"""The flags that describe a model and how to run it, spelled alike in every command that takes
them (`params`, `bench`, `export`, `predict`, `analyze`), after timm's scripts: --model,
--num-classes, --in-chans, --input-size C H W, --attn, --reg, the SR flags (generated from
`SRSpec`), --batch-size, --device (auto: cuda where there is one) and --precision.

Flags of earlier releases (--size, --sr-blocks, --sr-squeeze, --batch, --bf16) still work for one
release and say what replaced them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..layer_choices import ATTN_LAYERS, REG_LAYERS
from ..schema import parse_hw
from ..spec import SRSpec
from .common import at_least, stage_arg

if TYPE_CHECKING:
    from torch import nn

FORWARD_PRECISIONS = ("32-true", "bf16-mixed")  # what a forward is timed or run in: float32, or bf16 autocast


class Renamed(argparse.Action):
    """A flag of an earlier release: stores into today's flag's place and says so on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str, convert=None, **kwargs) -> None:
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(
            f"srblock: {option_string} is now {self.new}; the old flag stops working in the next release",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)


def device_default() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_run_args(p: argparse.ArgumentParser, *, batch: int, precision: bool = True) -> None:
    """--batch-size, --device (auto) and --precision."""
    from .common import device_arg

    p.add_argument(
        "--batch-size",
        type=at_least(1),
        default=batch,
        metavar="N",
        help=f"images per forward (default: {batch})",
    )
    p.add_argument(
        "--batch",
        type=at_least(1),
        dest="batch_size",
        action=Renamed,
        new="--batch-size",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--device",
        type=device_arg,
        default=None,
        help="cpu or cuda[:N] (default: cuda where there is one, else cpu)",
    )
    if precision:
        p.add_argument(
            "--precision",
            choices=FORWARD_PRECISIONS,
            default="32-true",
            help="32-true, or bf16-mixed (bf16 autocast)",
        )
        p.add_argument(
            "--bf16", nargs=0, dest="precision", action=Renamed, new="--precision bf16-mixed",
            convert=lambda _: "bf16-mixed", help=argparse.SUPPRESS,
        )  # fmt: skip


def add_sr_args(p: argparse.ArgumentParser) -> None:
    """--sr-stage, and one flag per field of SRSpec that shapes the block (--sr-memory-blocks...)."""
    g = p.add_argument_group("SR block (SRSpec)")
    g.add_argument(
        "--sr-stage", type=stage_arg, metavar="M", help="SR block after stage M (a number or a module name)"
    )
    hints = typing.get_type_hints(SRSpec)
    for field in dataclasses.fields(SRSpec):
        if not field.metadata.get("arch"):
            continue
        flag, tp = f"--sr-{field.name.replace('_', '-')}", hints[field.name]
        base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        helptext = f"{field.metadata['help']} (default: {field.default})"
        if base is bool:
            g.add_argument(flag, action="store_true", default=None, help=helptext)
        elif base is int:
            g.add_argument(flag, type=at_least(1), metavar="N", help=helptext)
        elif field.name == "act":  # "none" (or null) for no activation
            g.add_argument(flag, type=_act, metavar="NAME", help=helptext)
        else:
            g.add_argument(flag, type=base, metavar=field.name.upper().split("_")[0], help=helptext)
    for old, new in (("--sr-blocks", "memory_blocks"), ("--sr-squeeze", "squeeze_channels")):
        dest = f"sr_{new}"
        g.add_argument(
            old,
            type=at_least(1),
            dest=dest,
            action=Renamed,
            new=f"--sr-{new.replace('_', '-')}",
            help=argparse.SUPPRESS,
        )


def model_dests() -> tuple[str, ...]:
    """Where add_model_flags stores its flags: what describes a model to build (not a run's own)."""
    sr = [f"sr_{f.name}" for f in dataclasses.fields(SRSpec) if f.metadata.get("arch")]
    return ("model", "num_classes", "in_chans", "input_size", "input_hw", "attn", "reg", "sr_stage", *sr)


def _act(text: str) -> str:
    return "" if text.lower() in ("none", "null") else text


def sr_spec(args: argparse.Namespace) -> SRSpec:
    """The SRSpec the SR flags describe (the paper's block where none is given); SR flags without
    --sr-stage are a one-line error, not ignored."""
    given = {f.name: getattr(args, f"sr_{f.name}", None) for f in dataclasses.fields(SRSpec)}
    given = {k: (None if v == "" else v) for k, v in given.items() if v is not None}
    if given and getattr(args, "sr_stage", None) is None:
        flags = ", ".join(f"--sr-{k.replace('_', '-')}" for k in given)
        raise ValueError(f"{flags} describe an SR block: add --sr-stage M (where it goes)")
    return SRSpec(**given)


def add_model_flags(p: argparse.ArgumentParser, *, with_model: bool = True) -> None:
    """--model (unless the command declares its own), --num-classes, --in-chans, --input-size,
    --attn, --reg and the SR flags."""
    if with_model:
        p.add_argument("--model", metavar="NAME", help="a zoo model, or tv:NAME (torchvision) or timm:NAME")
    p.add_argument("--num-classes", type=at_least(1), metavar="N", help="classes (default: the model's)")
    p.add_argument(
        "--in-chans",
        type=at_least(1),
        metavar="C",
        help="input channels, e.g. 1 for grey (default: the model's)",
    )
    p.add_argument(
        "--input-size", type=at_least(1), nargs=3, metavar=("C", "H", "W"),
        help="the input the model is fed, which sizes the SR memory (default: the model's)",
    )  # fmt: skip
    p.add_argument(
        "--size", dest="input_hw", action=Renamed, new="--input-size C H W",
        convert=lambda text: _hw(text), help=argparse.SUPPRESS,
    )  # fmt: skip
    p.add_argument("--attn", choices=ATTN_LAYERS[1:], help="SE or CBAM in every block (zoo models)")
    p.add_argument(
        "--reg", choices=REG_LAYERS[1:], help="regulariser: dropout, dropout2d or DropBlock (zoo models)"
    )
    add_sr_args(p)


def _hw(text: str) -> tuple[int, int]:
    try:
        return parse_hw(text, "--size")
    except ValueError as err:
        raise argparse.ArgumentError(None, str(err)) from None


def input_size(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) from --input-size (or the old --size and --in-chans), else the model's own."""
    if args.input_size:
        size = tuple(args.input_size)
        if args.in_chans is not None and args.in_chans != size[0]:
            shown = " ".join(map(str, size))
            raise ValueError(
                f"--in-chans {args.in_chans} and --input-size {shown} disagree: give one of them"
            )
        return size  # type: ignore[return-value]
    channels = args.in_chans or default[0]
    hw = getattr(args, "input_hw", None)
    return (channels, *hw) if hw else (channels, *tuple(default)[1:])


def build_from_args(args: argparse.Namespace) -> tuple[nn.Module, tuple[int, int, int]]:
    """(model, input_size) from --model and friends: the zoo, torchvision or timm, with SR."""
    from ..factory import create_model  # (torch: only once a command runs)

    if not args.model:
        raise ValueError("give --model NAME (a zoo model, tv:NAME or timm:NAME)")
    channels = args.input_size[0] if args.input_size else args.in_chans
    model = create_model(
        args.model, num_classes=args.num_classes, attn=args.attn, reg=args.reg, in_chans=channels
    )
    size = input_size(args, model.default_input_size)
    spec = sr_spec(args)
    if args.sr_stage is not None:
        from ..insert import add_sr

        add_sr(model, args.sr_stage, spec, input_size=size)
    return model, size


def device(args: argparse.Namespace) -> str:
    """--device, or cuda where there is one."""
    return args.device or device_default()
