"""`srblock sweep`: every row of a paper table x its seeds, skipping finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..recipes import group_name
from ..run_folder import RunFolder
from ..sweeps import expand_sweep, select_rows
from .common import add_parallel_arg, add_training_args, job_args, training_overrides
from .workers import add_launch_args, launched

EPILOG = """\
examples:
  srblock sweep cifar100-table1 --data ~/data --out runs/     # Table I x 5 seeds
  srblock sweep cifar100-table2 --data ~/data --seeds 0 1 --set epochs=50
  srblock table runs/cifar100-table1                          # then the table, mean +- std

Finished runs (result.json) are skipped and unfinished ones resume, so the same command
continues a sweep that was stopped. --parallel N trains N runs at once on each device, each in
its own process writing RUN_FOLDER/train.log.

Workers: the same command started any number of times on one --out (on one machine, on several
sharing a file system, or as the tasks of a SLURM job array) shares the sweep. Each takes the
next run no live worker holds (the first seed of every row before the second seed of any), trains
it and goes on; a run whose worker died is resumed from its last checkpoint by the next worker
that finds it (on another host once its claim is not renewed for 10 minutes). --rows splits a
sweep by hand.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train every row of a paper table x its seeds",
        epilog=EPILOG,
        description="Train every row of a sweep (the paper's tables), each with its seeds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", help="sweep name (see `srblock recipes`) or YAML path")
    p.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help="only these rows: indices (0-based, in the file's order) and key=value tests (name=R18, "
        "model=resnet18_cifar), for splitting a sweep by hand",
    )
    add_training_args(p)
    add_parallel_arg(p)
    add_launch_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train.jobs import Job, run_jobs  # the training stack loads for the commands that train

    rows = expand_sweep(args.sweep, training_overrides(args, sweep=True))
    rows = select_rows(rows, args.rows, args.sweep) if args.rows else rows
    folder = Path(args.out) / group_name(args.sweep)
    jobs = [
        Job(cfg, RunFolder.of(args.out, group_name(args.sweep), cfg, row.changes).path, row.extra())
        for row in rows
        for cfg in row.configs(args.seeds)
    ]
    first: dict[Path, dict] = {}
    for job in jobs:  # two rows of one configuration would train one folder, and show as one row
        row = first.setdefault(job.folder.parent, job.extra)
        if row["row"] != job.extra["row"]:
            raise ValueError(
                f"{args.sweep}: rows {row['name']!r} and {job.extra['name']!r} are one configuration (both "
                f"would train {job.folder.parent}): remove one, or make them differ"
            )

    if launched(args, group_name(args.sweep)):  # (its rows and keys checked before submitting)
        return 0

    def count(outcomes: list) -> str:
        trained = sum(o.trained for o in outcomes)
        others = len(jobs) - len(outcomes)  # other workers' (said above), or stopped
        return (
            f"{len(jobs)} runs: {len(outcomes) - trained} were finished already, {trained} trained now"
            + (f", {others} not here" if others else "")
            + f"; see `srblock table {folder}`"
        )

    run_jobs(jobs, resume=True, summary=count, **job_args(args))
    return 0
