"""`srblock report`: one self-contained report.html of runs, analyses included."""

from __future__ import annotations

import argparse
import shlex
import sys

from .analyze import SPLITS
from .common import at_least, device_arg, note_if_unfinished, refuse_flags
from .model_flags import Renamed, device

EPILOG = """\
The page needs no network: every figure is embedded. It holds each run's config, learning
curves, result, and the analyses of `srblock analyze` (run again here), plus the table of
results across seeds of the folders given.

examples:
  srblock report runs/demo/resnet10s_cifar-sr3p4h8/seed0
  srblock report runs/cifar100-table2 --data ~/data --html table2.html
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML report of runs and their analyses",
        epilog=EPILOG,
        description="Write report.html for run folders (or folders of runs).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding runs")
    p.add_argument(
        "--html", metavar="FILE", help="the page to write (default: RUN_DIR/report.html of the first)"
    )
    p.add_argument(  # (--out names a folder of runs everywhere else)
        "--out", dest="html", action=Renamed, new="--html FILE", help=argparse.SUPPRESS
    )
    p.add_argument("--classes", nargs="+", metavar="C", help="class names or indices (default: five spread)")
    p.add_argument(
        "--per-class", type=at_least(1), default=50, metavar="N", help="images per class (default: 50)"
    )
    p.add_argument("--split", choices=SPLITS, default="val")
    p.add_argument("--data", metavar="DIR", help="the data folder the runs were trained from")
    p.add_argument(
        "--device",
        type=device_arg,
        default=None,
        help="where the model runs: cpu or cuda[:N] (default: cuda where there is one, else cpu)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.report import report_runs, write_report  # matplotlib, torchmetrics: this command's
    from ..registry import PYTHON_MODEL
    from ..run_folder import RunFolder

    runs, stopped = report_runs(args.run_dirs)
    for folder, why in stopped.items():
        print(f"srblock report: left out {folder}: stopped as diverged ({why})", file=sys.stderr)
    for folder in runs:
        note_if_unfinished(folder, "is reported")
    configs = [RunFolder(folder).config() for folder in runs]
    analysed = [  # what the analyses read: SR classification runs whose model is built by name
        c
        for c in configs
        if c.sr_stage is not None and not c.SEGMENTS and not c.model.startswith(PYTHON_MODEL)
    ]
    if not analysed:
        why = "here: no run given has an SR block to analyse (classification runs with sr_stage set)"
        refuse_flags(args, ["classes", "per_class", "split"], why)
    if not analysed and not any(c.SEGMENTS for c in configs):  # (segmentation: its example predictions)
        refuse_flags(args, ["data", "device"], "here: no run given is analysed or predicts (curves only)")

    command = "srblock " + shlex.join(args.words)  # (the header says what made the page)
    path = write_report(
        args.run_dirs, args.html, args.classes, args.per_class, args.split, args.data, device(args), command
    )
    print(path)
    return 0
