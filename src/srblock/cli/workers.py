"""`--launcher`: a training command's workers started elsewhere (launch.py), a SLURM job array
or local processes, each running the command without these flags."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .common import at_least, refuse_flags

# the flags that start workers elsewhere (launch.py): a worker's own command has none of them
LAUNCH_FLAGS = {
    "--launcher": "launcher",
    "--workers": "workers",
    "--slurm-partition": "partition",
    "--slurm-time": "time",
    "--slurm-gpus-per-node": "gpus_per_node",
    "--slurm-cpus-per-task": "cpus_per_task",
    "--slurm-mem-gb": "mem_gb",
    "--slurm-account": "account",
    "--slurm-qos": "qos",
    "--slurm-constraint": "constraint",
    "--slurm-setup": "setup",
    "--slurm-array-parallelism": "array_parallelism",
    "--slurm-param": "additional",
}


def add_launch_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('workers elsewhere (submitit: pip install "srblock[cluster]")')
    g.add_argument(
        "--launcher", choices=("slurm", "local"),
        help="submit --workers workers of this command: a SLURM job array, or local processes (it "
        "waits for those); each shares --out with the others",
    )  # fmt: skip
    g.add_argument("--workers", type=at_least(1), default=1, metavar="K", help="workers (default: 1)")
    g.add_argument("--slurm-partition", dest="partition", metavar="NAME")
    g.add_argument("--slurm-time", dest="time", type=at_least(1), metavar="MIN", help="minutes per job")
    g.add_argument("--slurm-gpus-per-node", dest="gpus_per_node", type=at_least(0), metavar="N")
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


def launched(args: argparse.Namespace, group: str) -> bool:
    """Submits the command's workers where --launcher says (True), or does nothing (False): the
    command then trains here. SLURM's workers are submitted and left; local ones are waited for."""
    if not getattr(args, "launcher", None):
        refuse_flags(args, list(LAUNCH_FLAGS.values())[1:], "without --launcher (they configure its workers)")
        return False
    from ..launch import submit, without_flags

    if args.devices not in (1, "1") or args.num_nodes != 1:
        raise ValueError("a submitted worker trains on one device: give more --workers rather than --devices")
    bad = [item for item in args.additional or [] if "=" not in item]
    if bad:
        raise ValueError(f"--slurm-param {bad[0]}: write KEY=VALUE, e.g. --slurm-param exclude=node7")
    argv = without_flags(args.words, list(LAUNCH_FLAGS))
    if args.command == "train" and not args.resume:
        argv.append("--resume")  # a requeued worker goes on where it stopped
    logs = Path(args.out) / "workers" / group
    options = {v: getattr(args, v) for v in LAUNCH_FLAGS.values()}
    jobs = submit(argv, args.launcher, args.workers, logs, options, f"srblock-{group}")
    ids = ", ".join(job.job_id for job in jobs)
    print(f"submitted {len(jobs)} workers ({args.launcher}): jobs {ids}; logs in {logs}")
    print(f"each runs: {shlex.join(['srblock', *argv])}")
    if args.launcher == "local":
        failed = []
        for job in jobs:
            try:
                job.result()
            except Exception as err:  # a worker's error: the others' runs stand
                failed.append(
                    f"{job.job_id}: {str(err).strip().splitlines()[-1] if str(err).strip() else err}"
                )
        if failed:
            raise ValueError(f"{len(failed)} of {len(jobs)} workers failed (logs in {logs}): {failed[0]}")
        print(f"the {len(jobs)} workers have ended")
    return True
