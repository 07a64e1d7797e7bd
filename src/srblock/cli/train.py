"""`srblock train`: one recipe, one or several seeds, resumable."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import with_seeds
from ..keys import make_config, recipe_values, set_changes
from ..recipes import group_name
from ..render import render
from ..results import METRICS, tested_on
from ..run_folder import RunFolder, unfinished_runs
from .common import add_parallel_arg, add_training_args, job_args, training_overrides
from .workers import add_launch_args, launched

EPILOG = """\
examples:
  srblock train cifar100 --data ~/data --set model=resnet18_cifar --set attn=se \\
        --set sr_stage=3 --set sr_memory_blocks=2 --seeds 0 1 2 3 4 --out runs/
  srblock train cifar100 --out runs/ --resume        # continue every unfinished seed where it stopped
  srblock train fashion_mnist --set epochs=1 --set limit_train=2000 --quiet
  srblock train my_recipe.yaml --devices 4 --precision bf16-mixed
  srblock train imagenet --data /data/imagenet --devices 8 --set gpu_decode=true
  srblock train cityscapes --data /data/cityscapes --devices 4 --set sr_stage=2 --set sr_memory_blocks=2

Each run writes OUT/<recipe>/<configuration>/seed<k>/: config.yaml, metrics.csv, tensorboard/,
last.ckpt (every epoch), best.ckpt (best on validation; the last epoch's where the data have no
test split apart from it) and result.json (test accuracy of best.ckpt).
Segmentation recipes (cityscapes, fashion_mnist_seg) count iterations instead of epochs and add
class_iou.md (per-class IoU, whole image and multi-scale + flip).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a recipe (several seeds, resumable)",
        epilog=EPILOG,
        description="Train a recipe: a shipped name (see `srblock recipes`) or a YAML file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="recipe name or YAML path")
    p.add_argument(
        "--resume", action="store_true", help="continue unfinished runs from their last checkpoint"
    )
    add_training_args(p)
    add_parallel_arg(p)
    add_launch_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train.jobs import run_jobs  # the training stack loads for the commands that train

    options, overrides = job_args(args), training_overrides(args)
    group = group_name(args.recipe)
    resuming = args.resume and not args.sets and not args.seeds
    jobs = resumed_jobs(Path(args.out) / group, overrides) if resuming else new_jobs(args, group, overrides)
    if not jobs:
        print(f"nothing to resume under {Path(args.out) / group}")
        return 0
    if launched(args, group, seeds=None if resuming else [job.cfg.seed for job in jobs]):
        return 0  # (the keys were checked before the workers were submitted)
    run_jobs(jobs, resume=args.resume, summary=results_table, **options)
    return 0


def new_jobs(args: argparse.Namespace, group: str, overrides: dict) -> list:
    """The recipe with its overrides, once per seed, each in its folder (named after what --set changed)."""
    from ..train.jobs import Job

    base = make_config(args.recipe, overrides)
    changes = set_changes(base, overrides, recipe_values(args.recipe))
    configs = with_seeds(base, args.seeds)
    return [Job(cfg, RunFolder.of(args.out, group, cfg, changes).path) for cfg in configs]


def resumed_jobs(root: Path, overrides: dict) -> list:
    """The unfinished runs under `root` (run_jobs skips those that diverged), each with its own
    config: --precision, --data and --logger say how to run them, not what they compute. A broken
    folder is skipped with a word, and does not stop the others."""
    from ..train.jobs import Job

    how = {k: v for k, v in overrides.items() if k in ("precision", "data_dir", "loggers")}
    folders, jobs = unfinished_runs(root), []
    for folder in folders:
        try:
            jobs.append(Job(dataclasses.replace(RunFolder(folder).config(), **how), folder))
        except (ValueError, OSError) as err:
            print(f"srblock train: skipped {folder}: {err}", file=sys.stderr)
    if folders and not jobs:
        raise ValueError(f"no run under {root} can be resumed (see above)")
    return jobs


def results_table(outcomes: list) -> str | None:
    """The runs trained now, one row each: folder, seed, scores, minutes."""
    rows = [
        {
            "run": str(o.job.folder),
            "seed": o.job.cfg.seed,
            "tested": tested_on(o.result),
            **{m: o.result.get(m) for m in METRICS},
            "minutes": o.result["wall_time_s"] / 60,
        }
        for o in outcomes
        if o.trained
    ]
    if not rows:
        return None
    shown = [m for m in ("tested", *METRICS) if any(r[m] is not None for r in rows)]
    return render(rows, ["run", "seed", *shown, "minutes"])
