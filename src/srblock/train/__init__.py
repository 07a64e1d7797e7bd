"""Training on Lightning Fabric: the classification loop (classify.py), the segmentation loop
(segment.py), what both share (engine.py: the Fabric, a run's start, checkpoints and end), the
batches of a classification split (batches.py), the lr schedules (schedule.py), seeds trained as
one stacked network (stacked.py) and the jobs of a command (jobs.py)."""

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.fabric import Fabric

from ..config import TrainConfig
from ..runs import Interrupted, RunLock
from .classify import train_classifier
from .compiling import damaged_cache_said
from .fabric import make_fabric
from .segment import train_segmenter
from .stacked import train_stacked


def run_training(fabric: Fabric, cfg: TrainConfig, folder: Path, **kwargs: Any) -> dict[str, Any]:
    """Trains one run with the loop its task needs (classification or segmentation); returns result.json."""
    loop = train_segmenter if cfg.SEGMENTS else train_classifier
    with RunLock(folder, active=fabric.global_rank == 0):  # one process trains in a folder at a time
        try:
            with damaged_cache_said():
                return loop(fabric, cfg, folder, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(folder) from None


def run_stacked(
    fabric: Fabric, jobs: Sequence[Any], **kwargs: Any
) -> tuple[dict[Path, dict[str, Any]], dict[Path, str]]:
    """Trains jobs (jobs.Job) that differ only in their seed as one stack (stacked.py), each run's
    folder locked; returns the results of those that finished and the errors of those that diverged."""
    with contextlib.ExitStack() as locks:
        for job in jobs:
            locks.enter_context(RunLock(job.folder, active=fabric.global_rank == 0))
        try:
            with damaged_cache_said():
                return train_stacked(fabric, [(job.cfg, job.folder, job.extra) for job in jobs], **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(*(job.folder for job in jobs)) from None


__all__ = [
    "make_fabric",
    "run_stacked",
    "run_training",
    "train_classifier",
    "train_segmenter",
    "train_stacked",
]
