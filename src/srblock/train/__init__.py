"""Training on Lightning Fabric: the classification loop (classify.py), the segmentation loop
(segment.py), what both share (engine.py: the Fabric, a run's start, checkpoints and end), the
batches of a classification split (batches.py), the lr schedules (schedule.py), seeds trained as
one stacked network (stacked.py) and the jobs of a command (jobs.py)."""

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch  # noqa: F401, I001  (first: the start-up report times torch apart from the stack on it)

from .. import startup

startup.mark("config, torch")
from lightning.fabric import Fabric  # noqa: E402

from ..run_folder import Interrupted, RunFolder  # noqa: E402
from ..run_lock import RunHeld  # noqa: E402
from .classify import train_classifier  # noqa: E402
from .compiling import damaged_cache_said  # noqa: E402
from .fabric import make_fabric  # noqa: E402
from .segment import train_segmenter  # noqa: E402
from .stacked import train_stacked  # noqa: E402
from .tracking import close_open_loggers  # noqa: E402

startup.mark("timm, torchvision, Lightning, the loops")


@contextlib.contextmanager
def claimed(fabric: Fabric, folders: Sequence[Path]) -> Iterator[None]:
    """The claim on every run folder (run_lock.py; the first process of a distributed run holds
    them), or RunHeld on every process where one is held by another worker or was finished by one
    meanwhile: the command leaves it to that worker."""
    with contextlib.ExitStack() as locks:
        refusal: tuple[str, str] | None = None  # (held or another error, its words)
        if fabric.global_rank == 0:
            try:
                for folder in folders:
                    run = RunFolder(folder)
                    locks.enter_context(run.lock())
                    if run.has_result():  # finished by another worker since this one looked
                        raise RunHeld(f"{folder} was finished by another worker")
            except RunHeld as err:
                refusal = ("held", str(err))
            except Exception as err:  # (an OSError making the claim): every process stops, none waits
                if fabric.world_size == 1:
                    raise
                refusal = ("error", str(err))
        if fabric.world_size > 1:  # the other processes follow the first
            refusal = fabric.broadcast(refusal, src=0)
        if refusal:
            raise (RunHeld if refusal[0] == "held" else ValueError)(refusal[1])
        yield


@contextlib.contextmanager
def trackers_closed() -> Iterator[None]:
    """The trackers' runs of a run that ends otherwise than finished are closed as failed (killed
    at Ctrl-C or a requeue), not left RUNNING (tracking.py)."""
    try:
        yield
    except BaseException as err:
        close_open_loggers("killed" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "failed")
        raise


def train_in_process(
    fabric: Fabric, jobs: Sequence[Any], *, resume: bool, quiet: bool
) -> tuple[dict[Path, dict[str, Any]], dict[Path, str]]:
    """Trains `jobs` (jobs.Job: cfg, folder, extra, and srblock.fit's model and data) in this
    process: one run with its task's loop, or the seeds of one configuration as one stack
    (stacked.py). Each run's folder is claimed (RunHeld where another worker holds one), and Ctrl-C
    names where each run stands. Returns the results of the runs that finished and the errors of
    those that diverged (a run alone that diverges raises RunDiverged)."""
    folders = [job.folder for job in jobs]
    with claimed(fabric, folders), trackers_closed(), damaged_cache_said():
        try:
            if len(jobs) > 1:
                group = [(job.cfg, job.folder, job.extra) for job in jobs]
                return train_stacked(fabric, group, resume=resume, quiet=quiet)
            [job] = jobs
            if job.cfg.SEGMENTS:
                result = train_segmenter(
                    fabric, job.cfg, job.folder, resume=resume, quiet=quiet, extra=job.extra
                )
            else:
                given = (
                    {"model": job.model, "data": job.data} if getattr(job, "model", None) is not None else {}
                )
                result = train_classifier(
                    fabric, job.cfg, job.folder, resume=resume, quiet=quiet, extra=job.extra, **given
                )
            return {job.folder: result}, {}
        except KeyboardInterrupt:
            raise Interrupted(*folders) from None


__all__ = [
    "make_fabric",
    "train_in_process",
    "train_classifier",
    "train_segmenter",
    "train_stacked",
]
