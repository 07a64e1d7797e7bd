"""`srblock sweep`: every row of a paper table x its seeds, skipping finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..recipes import load_yaml
from ..train import make_config, run_training
from ..train.config import set_value
from ..train.runs import is_finished, run_dir
from .common import add_training_args, make_fabric, training_overrides, with_seeds

EPILOG = """\
examples:
  srblock sweep cifar100-table1 --data ~/data --out runs/     # Table I x 5 seeds
  srblock sweep cifar100-table2 --data ~/data --seeds 0 1 --set epochs=50
  srblock table runs/cifar100-table1                          # then the table, mean +- std

Finished runs (result.json) are skipped and unfinished ones resume, so the same command
continues a sweep that was stopped.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train every row of a paper table x its seeds", epilog=EPILOG,
                       description="Train every row of a sweep (the paper's tables), each with its seeds.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="sweep name (see `srblock recipes`) or YAML path")
    add_training_args(p)
    p.set_defaults(run=run)


def sweep_jobs(sweep_name: str, out: Path, overrides: dict, seeds: list[int] | None):
    """(config, folder, extra) of every row and seed of a sweep."""
    sweep = load_yaml(sweep_name)
    if "runs" not in sweep or "recipe" not in sweep:
        raise ValueError(f"{sweep_name} is a recipe, not a sweep: run it with `srblock train {sweep_name}`")
    group = Path(sweep_name).stem
    jobs = []
    for index, row in enumerate(sweep["runs"]):
        values: dict = {}
        for key, value in {**sweep.get("set", {}), **row}.items():
            if key not in ("name", "paper"):
                set_value(values, key, value, f"{sweep_name} row {row.get('name')!r}")
        base = make_config(sweep["recipe"], {**values, **overrides})
        extra = {"name": row["name"], "row": index, "table": sweep.get("table"), "paper": row.get("paper"),
                 "M": base.sr_stage, "P": base.sr_blocks if base.sr_stage is not None else None}
        for cfg in with_seeds(base, seeds or sweep.get("seeds", [0, 1, 2, 3, 4])):
            jobs.append((cfg, run_dir(out, group, cfg), extra))
    return jobs


def run(args: argparse.Namespace) -> int:
    jobs = sweep_jobs(args.sweep, Path(args.out), training_overrides(args), args.seeds)
    fabric = make_fabric(args, jobs[0][0].precision)
    done = 0
    for cfg, folder, extra in jobs:
        if is_finished(folder):
            done += 1
            continue
        run_training(fabric, cfg, folder, data_root=args.data, resume=True, quiet=args.quiet, extra=extra)
    fabric.print(f"{len(jobs)} runs: {done} were finished already, {len(jobs) - done} trained now; "
                 f"see `srblock table {Path(args.out) / Path(args.sweep).stem}`")
    return 0
