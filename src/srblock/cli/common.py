"""Flags shared by the commands that train (data, output, seeds, devices), small argparse types,
and the note the commands that read a run folder print for an unfinished one."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import startup
from ..config import PRECISIONS, TRACKERS
from ..keys import key_groups, parse_set


def note_if_unfinished(folder: str | Path, what: str) -> None:
    """A line on stderr where a run folder has no result.json: `what` (its best checkpoint so far
    predicts, is exported...) is then not the tested model a finished run's would be. A run that
    stopped as diverged says so: `--resume` does not finish it."""
    from ..run_folder import BEST_CKPT, RunFolder

    folder = RunFolder(folder)
    if not folder.started() or folder.has_result():  # (an export has no config.yaml)
        return
    if not (folder / BEST_CKPT).is_file():  # nothing to read: the reader's own error says why
        return
    if folder.diverged():
        state = f"stopped as diverged ({folder.diverged()}): its best checkpoint before that"
    else:
        state = "is not finished (no result.json): its best checkpoint so far"
    print(f"note: {folder} {state} {what}", file=sys.stderr)


def _given(args: argparse.Namespace, dests: Iterable[str]) -> list[tuple[str, argparse.Action]]:
    """(flag as --help spells it, its action) of each flag among those storing into `dests` that
    the command line set to other than its default; a flag's old name shares its destination."""
    parser, wanted, found = getattr(args, "command_parser", None), set(dests), []
    for action in parser._actions if parser is not None else []:
        if action.dest in wanted and action.option_strings:
            wanted.discard(action.dest)  # (its first action is today's name: the old one is named never)
            if getattr(args, action.dest, action.default) != action.default:
                found.append((max(action.option_strings, key=len), action))
    return found


def given_flags(args: argparse.Namespace, dests: Iterable[str]) -> list[str]:
    """The flags among those storing into `dests` that the command line gave, as --help spells them."""
    return [flag for flag, _ in _given(args, dests)]


def refuse_flags(args: argparse.Namespace, dests: Iterable[str], why: str) -> None:
    """A one-line error naming the flags among `dests` that were given, where they would do
    nothing (`why` says why and what to do): a flag is applied or refused, never ignored."""
    flags = given_flags(args, dests)
    if flags:
        raise ValueError(f"{' '.join(flags)} {'does' if len(flags) == 1 else 'do'} nothing {why}")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def device_arg(text: str) -> str:
    """--device: cpu, or cuda (cuda:N) where there is a GPU."""
    import torch

    if text != "cpu" and not re.fullmatch(r"cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"takes cpu or cuda (cuda:N), got {text!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU here; use --device cpu")
    return text


def devices_arg(text: str) -> int | str:
    """--devices: a positive number, or 'auto'."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--devices takes a positive number or 'auto', got {text!r}")
    return int(text)


def add_device_args(p: argparse.ArgumentParser, several: bool = True) -> None:
    g = p.add_argument_group("devices (Lightning Fabric)")
    g.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"))
    if several:
        g.add_argument(
            "--devices",
            type=devices_arg,
            default=1,
            help="devices per node: a number, or 'auto' (default: 1)",
        )
        g.add_argument("--num-nodes", type=at_least(1), default=1, metavar="N", help="nodes (default: 1)")
    p.set_defaults(devices=1, num_nodes=1)


def add_training_args(p: argparse.ArgumentParser, out_default: str = "runs") -> None:
    fields = "; ".join(f"{group}: {', '.join(keys)}" for group, keys in key_groups().items())
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder holding the data set (its layout: docs/guide.md); the run folder remembers it",
    )
    p.add_argument(
        "--out", metavar="DIR", default=out_default, help=f"where run folders go (default: {out_default})"
    )
    p.add_argument("--seeds", type=at_least(0), nargs="+", metavar="S", help="train once per seed")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set lr=0.05 (repeatable); "
        f"fields by the runs they apply to: {fields}",
    )
    p.add_argument(
        "--logger",
        dest="loggers",
        action="append",
        choices=TRACKERS,
        help="where the numbers go besides metrics.csv (repeatable; default: the recipe's loggers, "
        "tensorboard): mlflow (MLFLOW_TRACKING_URI, else OUT/mlflow.db), wandb, csv (metrics.csv alone)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--verbose", action="store_true", help="print where the time went before the first training step"
    )
    add_device_args(p)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="default: the recipe's (auto: bf16-mixed on GPU, 32-true on CPU)",
    )


def stack_size(text: str) -> int | str:
    """--stack: a number of seeds (1: none stacked) or auto."""
    if text == "auto":
        return text
    try:
        return at_least(1)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} (or auto)") from None


def add_parallel_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--parallel",
        type=at_least(1),
        metavar="N",
        help="train N runs at once on each device, each in its own process; its output goes to "
        "RUN_FOLDER/train.log (a small network leaves a large GPU mostly idle)",
    )
    p.add_argument(
        "--stack",
        type=stack_size,
        metavar="N|auto",
        help="train N seeds of one configuration as one batched network in this process, each "
        "written to its own run folder as if trained alone (auto: up to 8 on a GPU, none on the CPU)",
    )


def job_args(args: argparse.Namespace) -> dict:
    """How the command's runs are run (devices, nodes, --parallel, --quiet), for run_jobs."""
    startup.verbose = args.verbose
    return dict(
        quiet=args.quiet,
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        parallel=getattr(args, "parallel", None),
        stack=getattr(args, "stack", None),
    )


def training_overrides(args: argparse.Namespace, sweep: bool = False) -> dict:
    """The recipe fields the command line sets: every --set, --precision, and --data (as data_dir).
    The seeds are --seeds' (or a sweep's list): a seed set as a key beside them would be dropped."""
    overrides = parse_set(args.sets)
    if getattr(args, "loggers", None):
        overrides["loggers"] = list(dict.fromkeys(args.loggers))
    if "seed" in overrides and (args.seeds or sweep):
        given = f"--seeds {' '.join(map(str, args.seeds))}" if args.seeds else "the sweep's seeds"
        raise ValueError(
            f"--set seed={overrides['seed']} and {given} both choose the seeds: give --seeds "
            f"{overrides['seed']} (and the others) instead"
        )
    if args.precision:
        overrides["precision"] = args.precision
    if args.data:
        overrides["data_dir"] = str(Path(args.data).expanduser().resolve())
    return overrides


def stage_arg(text: str) -> int | str:
    """A stage: 1-based number, or a module name such as features.6."""
    return int(text) if text.isdigit() else text
