"""How every command trains runs (`train`, `sweep`, `demo`, `srblock.fit`): runs already finished are
skipped and their results read back, the others trained (or resumed) in this process with one
Fabric, `stack` seeds of a configuration at a time as one network (stacked.py), or `parallel` at
a time per device, each in its own process (parallel.py); then one summary. The commands only
parse their arguments into jobs."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .. import startup
from ..config import TrainConfig
from ..run_folder import DATA_FILE, RunDiverged, RunFolder
from ..run_lock import RunHeld, stalled


@dataclass
class Job:
    """One run to train: its config, its folder, what its result.json records besides (a sweep
    row's name), and for `srblock.fit` the model and data given in Python."""

    cfg: TrainConfig
    folder: Path
    extra: dict[str, Any] | None = None
    model: nn.Module | None = None
    data: Any = None  # splits.Splits

    @property
    def run(self) -> RunFolder:
        """The run's folder and its files."""
        return RunFolder(self.folder)


@dataclass
class Outcome:
    job: Job
    result: dict[str, Any]  # result.json
    trained: bool  # False: it was finished before this command


def shared_precision(configs: Iterable[TrainConfig]) -> str:
    """The precision of a command's runs: one Fabric trains them all, so they must agree."""
    found = sorted({cfg.precision for cfg in configs})
    if len(found) > 1:
        raise ValueError(
            f"these runs were started with different precisions ({', '.join(found)}): resume them "
            "together with --precision P, or one recipe configuration at a time"
        )
    return found[0]


AUTO_STACK = 8  # `stack: auto` on a GPU: up to this many seeds per stack; on the CPU none


def stack_reason(job: Job, world_size: int) -> str | None:
    """Why a job cannot train in a stack (None: it can)."""
    if job.cfg.SEGMENTS:
        return "stacked seeds train classification runs"
    if job.model is not None:
        return "a model given in Python trains alone"
    if world_size > 1:
        return "a stack trains on one device: leave out --devices/--num-nodes"
    if job.cfg.sr.diversity > 0:
        return "sr_diversity records each block's weights with their graph, which a stack cannot"
    if getattr(job.cfg, "loader", None) == "dataloader":  # its crops and flips: the process's stream
        return (
            "loader=dataloader's batches are not each seed's own in a stack (in the main process they "
            "crop and flip from one shared random stream): use loader=fast"
        )
    if getattr(job.cfg, "reg", None) == "db":
        return "DropBlock draws its masks in place, which torch.vmap cannot do per seed"
    return None


def stack_groups(
    todo: list[tuple[int, Job]], stack: int | str | None, device: str, world_size: int
) -> list[list[tuple[int, Job]]]:
    """The jobs in groups trained together: seeds of one configuration, `stack` at a time (`auto`:
    AUTO_STACK on a GPU, one on the CPU); a job that cannot be stacked is a group of its own, and an
    asked-for number of seeds that cannot be stacked is an error."""
    size = (AUTO_STACK if device == "cuda" else 1) if stack == "auto" else int(stack or 1)
    groups: dict[tuple, list[tuple[int, Job]]] = {}
    for i, job in todo:
        reason = stack_reason(job, world_size) if size > 1 else "alone"
        if reason is not None and stack != "auto" and size > 1:
            raise ValueError(f"--stack {stack}: {reason}")
        key = (i,) if reason else (str(job.folder.parent), repr(dataclasses.replace(job.cfg, seed=0)))
        groups.setdefault(key, []).append((i, job))
    chunks = [
        (k, n, group[k : k + size])
        for n, group in enumerate(groups.values())
        for k in range(0, len(group), size)
    ]
    return [chunk for _, _, chunk in sorted(chunks, key=lambda c: c[:2])]  # breadth first: see run_jobs


def check_finished_data(job: Job) -> None:
    """A finished run met again with data from another folder than its own (or with data sets from
    Python, srblock.fit's): the same data, or an error (a finished run would otherwise be skipped
    as if it had trained on them)."""
    from ..splits import load_splits

    if job.data is not None and (job.folder / DATA_FILE).exists():  # srblock.fit's data sets, again
        job.run.check_data(job.data, None, write=False)
        return
    given, own = job.cfg.data_dir, job.run.config().data_dir
    if given and own and Path(given).resolve() != Path(own).resolve() and (job.folder / DATA_FILE).exists():
        job.run.check_data(load_splits(job.cfg, given), given, write=False)


def breadth_first(todo: list[tuple[int, Job]]) -> list[tuple[int, Job]]:
    """The jobs in the order workers take them: the first seed of every configuration before the
    second seed of any, so a sweep stopped halfway (or shared by workers) tabulates every row."""
    ranks, count = {}, Counter()
    for i, job in todo:  # (the seeds of a configuration are the run folders of one parent)
        ranks[i] = count[job.folder.parent]
        count[job.folder.parent] += 1
    return sorted(todo, key=lambda pair: (ranks[pair[0]], pair[0]))


def run_jobs(
    jobs: Sequence[Job],
    *,
    resume: bool,
    quiet: bool = False,
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    parallel: int | None = None,
    stack: int | str | None = None,
    summary: Callable[[list[Outcome]], str | None] | None = None,
) -> list[Outcome]:
    """Trains `jobs` (skipping finished ones); returns every job's outcome, in order, and prints
    `summary(outcomes)` once (on the first process of a distributed run). Runs that
    diverged are an error once the others have finished."""
    from . import make_fabric, train_in_process
    from .parallel import run_parallel

    if parallel and num_nodes > 1:
        raise ValueError("--parallel runs each run on one device: leave out --num-nodes (or --parallel)")
    if parallel and any(job.model is not None for job in jobs):
        raise ValueError("a model given in Python trains in this process: leave out parallel")
    if parallel and stack not in (None, 1, "auto"):
        raise ValueError("--stack trains seeds in one process and --parallel in several: choose one")
    precision = shared_precision(j.cfg for j in jobs) if jobs else None
    # finished runs first: a command with nothing to train starts no Fabric (no processes, no GPU)
    done_before = [job.run.finished(job.cfg) for job in jobs]
    stopped = {i: job.run.diverged() for i, job in enumerate(jobs) if resume and not done_before[i]}
    for i, why in stopped.items():  # resumed as it is, it would diverge again
        if why:
            print(f"srblock train: skipped {jobs[i].folder}, stopped before: {why}", file=sys.stderr)
    todo = breadth_first(
        [(i, job) for i, job in enumerate(jobs) if not done_before[i] and not stopped.get(i)]
    )
    fabric = make_fabric(accelerator, devices, num_nodes, precision) if todo and not parallel else None
    startup.mark("Fabric")
    say = print if fabric is None else fabric.print
    outcomes: dict[int, Outcome] = {}
    for i, job in enumerate(jobs):
        if done_before[i]:
            check_finished_data(job)
            say(f"{job.folder} is finished (result.json): skipped; delete it to train again")
            outcomes[i] = Outcome(job, job.run.result(), trained=False)
    failed: dict[Path, str] = {}
    held: dict[int, str] = {}  # runs another worker trains (run_lock.py): left to it
    for attempt in range(2):  # a second look at those held: a worker may have died meanwhile
        todo = [(i, job) for i, job in todo if attempt == 0 or i in held]
        held = {}
        if fabric is None and todo:
            done, taken = run_parallel(
                [job for _, job in todo],
                parallel or 1,
                accelerator=accelerator,
                devices=devices,
                resume=resume,
                quiet=quiet,
            )
            by_folder = {job.folder: result for job, result in done}
            for i, job in todo:
                if job.folder in by_folder:
                    outcomes[i] = Outcome(job, by_folder[job.folder], trained=True)
                elif job.folder in taken:
                    held[i] = taken[job.folder]
        for group in stack_groups(todo, stack, fabric.device.type, fabric.world_size) if fabric else []:
            try:
                done, diverging = train_in_process(
                    fabric, [job for _, job in group], resume=resume, quiet=quiet
                )
                outcomes.update({i: Outcome(j, done[j.folder], True) for i, j in group if j.folder in done})
                failed.update(diverging)
            except RunDiverged as err:  # the next runs still train; the error comes once they have
                failed[group[0][1].folder] = str(err)
            except RunHeld as err:  # another worker trains it (or has just finished it)
                held.update({i: str(err) for i, _ in group})
        if not held:
            break
        waits = [w for i in held if (w := stalled(jobs[i].folder)) is not None]
        if attempt == 0 and waits:  # a held run whose claim is no longer renewed: wait for its lease
            say(f"waiting {min(waits):.0f} s for the claim of a worker that stopped renewing it to run out")
            time.sleep(min(waits) + 1.0)
    for i in held:  # what the other workers finished meanwhile counts as finished before
        if jobs[i].run.finished(jobs[i].cfg):
            outcomes[i] = Outcome(jobs[i], jobs[i].run.result(), trained=False)
    left = [why for i, why in held.items() if i not in outcomes]
    if left:
        say(f"{len(left)} runs are trained by other workers, left to them: e.g. {left[0]}")
    ordered = [outcomes[i] for i in sorted(outcomes)]
    text = summary(ordered) if summary else None
    if text:
        say(text)
    if failed:
        raise ValueError("; ".join(failed.values()))
    return ordered
