"""Several runs at once on each device: small CIFAR networks leave a large GPU mostly idle.

Each run trains in a process of its own (`python -m srblock.train.parallel FOLDER`), with its own
run folder, lock and checkpoints, so stopping and resuming works as for one run. Its output goes
to `FOLDER/train.log`; the command prints one line when a run starts and one when it ends. A run
stops (as at Ctrl-C: its lock released, its last checkpoint kept) when the command does, even when
the command is killed outright: it watches the pipe the command holds open to it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import torch

from .. import startup
from ..config import TrainConfig
from ..keys import config_from_mapping
from ..run_folder import Interrupted
from ..run_lock import RunHeld, holder

LOG_FILE = "train.log"  # a run's output when it trains beside others
HELD_EXIT = 75  # a run's process found its folder claimed by another worker (EX_TEMPFAIL): left to it


class ParallelJob(Protocol):
    """What a run needs to train in a process of its own (jobs.Job has it): config, folder, and
    what its result.json records besides."""

    cfg: TrainConfig
    folder: Path
    extra: dict[str, Any] | None


@dataclass
class _Running:
    job: ParallelJob
    process: subprocess.Popen
    log: IO[bytes]
    slot: int
    started: float = field(default_factory=time.time)


def device_slots(accelerator: str, devices: int | str, per_device: int) -> list[str | None]:
    """One entry per process that may run at once: a GPU index (CUDA_VISIBLE_DEVICES) or None (CPU)."""
    on_gpu = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ValueError(f"--accelerator {accelerator}: no CUDA GPU here; use --accelerator cpu (or auto)")
    if accelerator == "mps":
        raise ValueError("--parallel runs on CPUs and CUDA GPUs; leave it out with --accelerator mps")
    if not on_gpu:
        return [None] * per_device
    count = torch.cuda.device_count() if devices == "auto" else int(devices)
    if count > torch.cuda.device_count():
        raise ValueError(f"--devices {count}: this machine has {torch.cuda.device_count()} CUDA GPUs")
    # the GPUs this process may use, as the system names them (a scheduler's CUDA_VISIBLE_DEVICES)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(count)]
    return [names[gpu] for gpu in range(count) for _ in range(per_device)]


def threads_per_run(slots: int) -> int:
    """CPU threads for each of `slots` processes: the cores shared out, so runs do not fight for them."""
    return max(1, torch.get_num_threads() // slots)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def run_parallel(
    jobs: list[ParallelJob],
    per_device: int,
    *,
    accelerator: str = "auto",
    devices: int | str = 1,
    resume: bool = False,
    quiet: bool = False,
    threads: int | None = None,
) -> tuple[list[tuple[ParallelJob, dict[str, Any]]], dict[Path, str]]:
    """Trains `jobs`, `per_device` at a time on each device, each in its own process; returns each
    finished run with its result.json, in the order of `jobs`, and the runs another worker holds
    (folder: why), left to it. A run that fails does not stop the others: its last line is
    printed, and a ValueError at the end names every failed run."""
    slots = device_slots(accelerator, devices, per_device)
    threads = threads or threads_per_run(len(slots))
    pending, running, results, failed, held = list(jobs), [], [], [], {}
    free = list(range(len(slots)))
    total = len(jobs)
    # a stop asked by the system, or the terminal going away: as Ctrl-C
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while pending or running:
            while pending and free:
                if why := holder(pending[0].folder):  # another worker's: no process started for it
                    held[pending.pop(0).folder] = why
                    continue
                job, slot = pending.pop(0), free.pop(0)
                running.append(_start(job, slots[slot], slot, accelerator, threads, resume, quiet))
                where = f"GPU {slots[slot]}" if slots[slot] is not None else f"CPU ({threads} threads)"
                print(f"[{total - len(pending)}/{total}] started {job.folder} on {where}", flush=True)
            time.sleep(0.2)
            for run in [r for r in running if r.process.poll() is not None]:
                running.remove(run)
                free.append(run.slot)
                run.log.close()
                run.process.stdin.close()
                minutes = (time.time() - run.started) / 60
                if run.process.returncode == 0:
                    result = run.job.run.result()
                    results.append((run.job, result))
                    score = next(
                        (f"{k} {result[k]:.2f}" for k in ("test_acc", "test_miou") if k in result), ""
                    )
                    print(f"finished {run.job.folder}: {score} ({minutes:.1f} min)", flush=True)
                elif run.process.returncode == HELD_EXIT:
                    held[run.job.folder] = _last_line(run.job.folder / LOG_FILE).removeprefix(
                        "srblock train: "
                    )
                else:
                    failed.append(run.job.folder)
                    line = _last_line(run.job.folder / LOG_FILE)
                    print(f"failed {run.job.folder} (exit {run.process.returncode}): {line}", flush=True)
    except BaseException:  # Ctrl-C, or anything else: no run is left training unwatched
        _stop(running)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    order = {id(job): i for i, job in enumerate(jobs)}
    results.sort(key=lambda done: order[id(done[0])])  # in the order asked, whichever ended first
    if failed:
        raise ValueError(
            f"{len(failed)} of {total} runs failed (see above and each folder's {LOG_FILE}): "
            + ", ".join(str(f) for f in failed)
        )
    return results, held


def _start(
    job: ParallelJob, gpu: str | None, slot: int, accelerator: str, threads: int, resume: bool, quiet: bool
) -> _Running:
    job.folder.mkdir(parents=True, exist_ok=True)
    log = open(job.folder / LOG_FILE, "ab")  # noqa: SIM115 (closed when the run ends)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    command = [sys.executable, "-m", "srblock.train.parallel", str(job.folder)]
    command += ["--accelerator", "cuda" if gpu is not None else "cpu", "--threads", str(threads)]
    command += ["--extra", json.dumps(job.extra or {})]
    command += ["--resume"] * resume + ["--quiet"] * quiet + ["--verbose"] * startup.verbose
    process = subprocess.Popen(  # its own session: a Ctrl-C reaches it once, forwarded by _stop
        command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    # the config on one line; the pipe then stays open while this process lives (stop_with_parent)
    process.stdin.write(json.dumps(job.cfg.keys()).encode() + b"\n")
    process.stdin.flush()
    return _Running(job, process, log, slot)


def stop_with_parent(fd: int) -> threading.Thread:
    """Watches the pipe (file descriptor `fd`) the parent holds open: at its end (the parent gone,
    even by SIGKILL) this process interrupts itself as Ctrl-C would, rather than train on unseen
    holding its lock. (os.read: a buffered reader's lock would hold up the interpreter's exit.)"""

    def watch() -> None:
        while os.read(fd, 1):
            pass
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=watch, name="stop-with-parent", daemon=True)
    watcher.start()
    return watcher


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(running: list[_Running]) -> None:
    """Ctrl-C: each run stops as one run would (its last checkpoint stays); waits for them."""
    for run in running:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    for run in running:
        try:
            run.process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
        run.log.close()
        run.process.stdin.close()
        print(
            f"stopped {run.job.folder}: {_last_line(run.job.folder / LOG_FILE)}", file=sys.stderr, flush=True
        )


def _main(argv: list[str] | None = None) -> int:
    """One run of a parallel command: its config on stdin's first line, its folder and device as
    arguments; it stops when stdin ends (the parent has gone)."""
    p = argparse.ArgumentParser(prog="srblock-parallel-run")
    p.add_argument("folder", type=Path)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--extra", default="{}")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    # Ctrl-C (forwarded, or from stop_with_parent) must reach this run even where the command was
    # started with SIGINT ignored, as a background job of a script is, which its children inherit
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGUSR2"):  # SLURM's signal before a time-out reaches every process of a job:
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # the command's to handle (a submitit requeue)
    startup.verbose = args.verbose
    torch.set_num_threads(args.threads)
    from . import make_fabric, train_in_process

    try:
        cfg = config_from_mapping(json.loads(sys.stdin.buffer.readline()), f"the config of {args.folder}")
        stop_with_parent(sys.stdin.fileno())
        fabric = make_fabric(args.accelerator, 1, 1, cfg.precision)
        run = types.SimpleNamespace(cfg=cfg, folder=Path(args.folder), extra=json.loads(args.extra))
        train_in_process(fabric, [run], resume=args.resume, quiet=args.quiet)
    except RunHeld as err:  # another worker trains it: the command leaves it to that worker
        print(f"srblock train: {err}", file=sys.stderr)
        return HELD_EXIT
    except (ValueError, OSError) as err:
        print(f"srblock train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        where = err.where() if isinstance(err, Interrupted) else str(args.folder)
        print(f"srblock train: interrupted in {where}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_main())
