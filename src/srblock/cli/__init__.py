"""The `srblock` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from .. import startup
from ..run_folder import Interrupted
from . import analyze, bench, demo, export, params, predict, recipes, report, sweep, table, train

SUBCOMMANDS = (demo, train, sweep, table, analyze, report, predict, bench, export, recipes, params)

DESCRIPTION = """\
srblock: the Squeeze-and-Remember block for CNNs: models, recipes, analyses, costs.

examples:
  srblock demo                                    # offline: Fashion-MNIST with and without an SR block
  srblock recipes                                 # the paper's recipes and sweeps
  srblock train cifar100 --data ~/data --set sr_stage=3 --set sr_memory_blocks=2 --seeds 0 1 2 3 4
  srblock sweep cifar100-table1 --data ~/data && srblock table runs/cifar100-table1
  srblock analyze runs/demo/resnet10s_cifar-sr3p4h8/seed0   # what the memory learned
  srblock predict runs/demo/resnet10s_cifar-sr3p4h8/seed0 my_images/ --topk 3
  srblock params --table cifar100                 # parameter overhead of every row of Tables I and II
  srblock bench --model resnet18_cifar --sr-stage 3 --sr-memory-blocks 4  # latency, MACs: with SR and without
  srblock export --model resnet18_cifar --sr-stage 3 --onnx r18_sr.onnx
"""


# what the operating system's refusals mean for a path given on the command line, and the fix
_OS_ERRORS = {
    errno.EISDIR: "is a folder: give a file path (e.g. FOLDER/name)",
    errno.EEXIST: "exists and is not a folder: give a new folder path",
    errno.ENOTDIR: "goes through a file as if it were a folder: give a path under a folder",
    errno.EACCES: "cannot be written or read (permission denied): choose a path you may use",
    errno.EROFS: "is on a read-only file system: choose another path",
    errno.ENOSPC: "cannot be written: no space left on the device; free some and run the command again",
}


def os_error(err: OSError) -> str:
    """An operating system's error as one line naming the path the user gave (not a temporary
    file's), what is wrong with it and what to do."""
    path = err.filename2 if err.filename2 is not None else err.filename
    if err.errno == errno.EEXIST and path is not None and os.path.isdir(path):
        return f"{path} already exists: give a new path"
    if err.errno in _OS_ERRORS and path is not None:
        return f"{path} {_OS_ERRORS[err.errno]}"
    return str(err)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look, and a flag is only its
    whole name (a worker's command is the command without the launcher's flags, by name)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="srblock", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"srblock {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # its flags' defaults: which flags were given (common.py)
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; bad input ends in a one-line error and exit code 2."""
    startup.mark("imports")
    parser = build_parser()
    words = list(argv) if argv is not None else sys.argv[1:]
    args = parser.parse_args(words)
    args.words = words  # (a command that starts workers gives them its own words)
    if args.command is None:
        parser.print_help()
        return 2
    trains = args.command in ("train", "sweep", "demo") and "SUBMITIT_EXECUTOR" not in os.environ
    # a stop asked by the system (SLURM's time limit, scancel, a shutdown) as Ctrl-C: the run's claim
    # is released and its last checkpoint kept (under submitit, SIGTERM is submitit's to handle)
    previous = (
        signal.signal(signal.SIGTERM, _interrupt)
        if trains and threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as err:
        text = os_error(err) if isinstance(err, OSError) else str(err)
        print(f"srblock {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: say where things stand and how to go on, not a traceback
        where = f" in {err.where()}" if isinstance(err, Interrupted) else ""
        print(
            f"srblock {args.command}: interrupted{where}; continue with: {_again(args, words)}",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _again(args: argparse.Namespace, words: list[str]) -> str:
    """The command line that continues an interrupted command where it stopped: the same words,
    which skip finished runs, resume stopped ones and start the rest, with every flag that shaped
    them (`train` needs --resume to continue a stopped run)."""
    if args.command in ("train", "sweep", "demo"):
        again = ["srblock", *words]
        if args.command == "train" and not args.resume:
            again.append("--resume")
        return shlex.join(again)
    return "the same command"


if __name__ == "__main__":
    sys.exit(main())
