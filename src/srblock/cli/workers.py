"""`--launcher`: a training command's workers started elsewhere (launch.py), a SLURM job array
or local processes, each running the command without these flags."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from ..launch import LAUNCHERS, WORKER_VARIABLE, submit, without_flags
from .common import at_least, refuse_flags

GROUP = 'workers elsewhere (submitit: pip install "srblock[cluster]")'


def add_launch_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(GROUP)
    g.add_argument(
        "--launcher", choices=LAUNCHERS,
        help="submit --workers workers of this command: a SLURM job array (the command returns), or "
        "local processes (it waits for them); they share --out",
    )  # fmt: skip
    g.add_argument("--workers", type=at_least(1), default=1, metavar="K", help="workers (default: 1)")
    g.add_argument("--slurm-partition", dest="partition", metavar="NAME")
    g.add_argument(
        "--slurm-time", dest="time", type=at_least(1), metavar="MIN",
        help="minutes per job (default 60); a worker stopped at its end is requeued and resumes",
    )  # fmt: skip
    g.add_argument(
        "--slurm-gpus-per-node", dest="gpus_per_node", type=at_least(0), metavar="N",
        help="GPUs of each worker (none given: it trains on the CPU)",
    )  # fmt: skip
    g.add_argument("--slurm-cpus-per-task", dest="cpus_per_task", type=at_least(1), metavar="N")
    g.add_argument("--slurm-mem-gb", dest="mem_gb", type=at_least(1), metavar="GB")
    g.add_argument("--slurm-account", dest="account", metavar="NAME")
    g.add_argument("--slurm-qos", dest="qos", metavar="NAME")
    g.add_argument("--slurm-constraint", dest="constraint", metavar="EXPR")
    g.add_argument(
        "--slurm-setup", dest="setup", action="append", metavar="LINE",
        help="a shell line run before the worker (module load, conda activate...); repeatable",
    )  # fmt: skip
    g.add_argument(
        "--slurm-array-parallelism", dest="array_parallelism", type=at_least(1), metavar="N",
        help="workers running at once at most",
    )  # fmt: skip
    g.add_argument(
        "--slurm-param", dest="additional", action="append", metavar="KEY=VALUE",
        help="any other sbatch parameter, e.g. --slurm-param exclude=node7; repeatable",
    )  # fmt: skip


def _launch_actions(args: argparse.Namespace) -> list[argparse.Action]:
    """The launcher's flags, as the command's parser declares them (one list of them)."""
    groups = args.command_parser._action_groups
    return next(g for g in groups if g.title == GROUP)._group_actions


def worker_words(args: argparse.Namespace, seeds: list[int] | None) -> list[str]:
    """What each worker runs: the command's own words without the launcher's flags, its paths
    absolute (a job may start elsewhere), `--seeds` made explicit for `train` (a worker's
    `--resume` alone would resume what it finds, not start these runs) and --resume added."""
    flags = [flag for action in _launch_actions(args) for flag in action.option_strings]
    words = without_flags(args.words, flags)
    for i, word in enumerate(words):
        if i > 0 and words[i - 1] in ("--out", "--data"):
            words[i] = str(Path(word).expanduser().resolve())
        elif i == 1 and Path(word).is_file():  # the recipe or sweep, where it is a YAML file
            words[i] = str(Path(word).resolve())
    if args.command == "train" and not args.seeds and seeds:
        words += ["--seeds", *map(str, seeds)]
    if args.command == "train" and not args.resume:
        words.append("--resume")  # a requeued worker goes on where it stopped
    return words


def launched(args: argparse.Namespace, group: str, seeds: list[int] | None = None) -> bool:
    """Submits the command's workers where --launcher says (True), or does nothing (False): the
    command then trains here. SLURM's workers are submitted and left; local ones are waited for."""
    dests = [action.dest for action in _launch_actions(args)]
    if not getattr(args, "launcher", None):
        refuse_flags(args, dests[1:], "without --launcher (they configure its workers)")
        return False
    if os.environ.get(WORKER_VARIABLE):
        raise ValueError("--launcher in a submitted worker: a worker trains, it submits no workers")
    if args.devices not in (1, "1") or args.num_nodes != 1:
        raise ValueError("a submitted worker trains on one device: give more --workers rather than --devices")
    bad = [item for item in args.additional or [] if "=" not in item]
    if bad:
        raise ValueError(f"--slurm-param {bad[0]}: write KEY=VALUE, e.g. --slurm-param exclude=node7")
    if args.launcher == "local":
        refuse_flags(args, dests[2:], "with --launcher local (they are SLURM's)")
    words = worker_words(args, seeds)
    logs = Path(args.out).expanduser().resolve() / "workers" / group
    jobs = submit(
        words, args.launcher, args.workers, logs, {d: getattr(args, d) for d in dests}, f"srblock-{group}"
    )
    ids = ", ".join(job.job_id for job in jobs)
    print(f"submitted {len(jobs)} workers ({args.launcher}): jobs {ids}; logs in {logs}")
    print(f"each runs: {shlex.join(['srblock', *words])}")
    if args.launcher == "local":
        failed = []
        for job in jobs:
            try:
                job.result()
            except Exception as err:  # a worker's error: the others' runs stand
                lines = str(err).strip().splitlines()
                failed.append(f"{job.job_id}: {lines[-1] if lines else type(err).__name__}")
        if failed:
            raise ValueError(f"{len(failed)} of {len(jobs)} workers failed (logs in {logs}): {failed[0]}")
        print(f"the {len(jobs)} workers have ended")
    return True
