"""Workers of a sweep started elsewhere, through submitit (as Hydra, fairseq and detectron2 start
theirs): a SLURM job array of K workers (`--launcher slurm`), or K local processes that submitit
starts and watches as it would cluster jobs (`--launcher local`: no cluster, the tests use it).

Each worker runs the command it was started from, without the launcher's flags: any number of
them share one --out (run_lock.py). A worker SLURM signals before its time-out, or preempts, is
requeued by submitit (`Worker` is checkpointable): the same command again, which takes its run
over and resumes it from the last checkpoint. submitit is an optional extra
(`pip install "srblock[cluster]"`).
"""

from __future__ import annotations

import importlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LAUNCHERS = ("slurm", "local")
WORKER_VARIABLE = "SRBLOCK_WORKER"  # set in a submitted worker: it trains, it submits no workers
MAX_REQUEUES = 1000  # time-outs a SLURM worker is requeued after (submitit's default: 3)
LOCAL_MINUTES = 60 * 24 * 30  # a local worker's "time limit": none to speak of


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ValueError(
            'submitting workers needs submitit: pip install "srblock[cluster]" (or pip install submitit)'
        ) from None
    return submitit


ENTRY_POINT = "srblock.cli:main"  # what `srblock` runs (pyproject's console script)


class Worker:
    """One worker: `srblock ARGV` in the job's process (the console script's entry point, looked up
    there). Checkpointable, as submitit knows it: on SLURM's signal before a time-out (or a
    preemption) submitit requeues the call this returns, the same command, which takes its run
    over and resumes it."""

    def __call__(self, argv: Sequence[str]) -> int:
        os.environ[WORKER_VARIABLE] = "1"  # it trains: a --launcher in its words would submit more
        module, _, name = ENTRY_POINT.partition(":")
        code = getattr(importlib.import_module(module), name)(list(argv))
        if code:
            raise RuntimeError(f"srblock {shlex.join(argv)} ended with exit code {code}")
        return code

    def checkpoint(self, argv: Sequence[str]) -> Any:
        return _submitit().helpers.DelayedSubmission(self, argv)


def slurm_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """submitit's parameters for the --slurm-* flags that were given (None: not given); --slurm-time
    is `submit`'s timeout_min."""
    names = {
        "partition": "slurm_partition",
        "gpus_per_node": "gpus_per_node",
        "cpus_per_task": "cpus_per_task",
        "mem_gb": "mem_gb",
        "account": "slurm_account",
        "qos": "slurm_qos",
        "constraint": "slurm_constraint",
        "setup": "slurm_setup",
        "array_parallelism": "slurm_array_parallelism",
    }
    params = {names[k]: v for k, v in options.items() if k in names and v is not None}
    extra = dict(item.split("=", 1) for item in options.get("additional") or [])
    if extra:
        params["slurm_additional_parameters"] = extra
    return params


def submit(
    argv: Sequence[str], launcher: str, workers: int, logs: Path, options: dict[str, Any], name: str
) -> list[Any]:
    """Submits `workers` jobs each running `srblock ARGV`; returns submitit's job objects."""
    submitit = _submitit()
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher takes {' or '.join(LAUNCHERS)}, got {launcher!r}")
    requeues = {"slurm_max_num_timeout": MAX_REQUEUES} if launcher == "slurm" else {}
    executor = submitit.AutoExecutor(folder=str(logs / "%j"), cluster=launcher, **requeues)
    # a SLURM worker stopped at its time limit is requeued as often as the sweep needs (submitit
    # stops after 3 by default); local workers have no time limit to speak of
    minutes = (options.get("time") or 60) if launcher == "slurm" else LOCAL_MINUTES
    executor.update_parameters(name=name, tasks_per_node=1, nodes=1, timeout_min=minutes)
    if launcher == "slurm":
        executor.update_parameters(**slurm_parameters(options))
    return executor.map_array(Worker(), [list(argv)] * workers)


def without_flags(words: Sequence[str], flags: Sequence[str]) -> list[str]:
    """`words` (a command line) without `flags`, each with its one value (`--flag V` or `--flag=V`)."""
    kept, words = [], list(words)
    while words:
        word = words.pop(0)
        if word.split("=", 1)[0] in flags:
            if "=" not in word and words:
                words.pop(0)  # its value
            continue
        kept.append(word)
    return kept
