"""The claim on a run folder while a process trains in it, so that any number of workers (one
machine, several sharing a file system, the tasks of a SLURM array) can share one sweep: each
takes a run that no live worker holds, and the run of a worker that died is taken over.

The claim is `.lock` in the run folder, put in place whole and atomically (a file of its own
linked to that name, which fails where one is there), holding its process's id, host and SLURM
job (where there is one). Its holder renews it (touches it) every `heartbeat_seconds()`. A claim
is live while it is renewed within `lease_seconds()` (10 minutes; SRBLOCK_LEASE_SECONDS sets
another) and, on the claim's own host, while its process runs; a SLURM job requeued after a
time-out takes its own claim back at once. A claim taken over is removed under a second claim
(`.lock.breaking`), so of several workers taking over one stale claim one wins. A holder whose
claim was taken over (it stalled past its lease) notices at its next checkpoint and stops
(`claim_lost`). Leases compare file times with this host's clock: hosts' clocks should agree
to well within the lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from .atomic_files import process_alive

LOCK_FILE = ".lock"  # held by the process training in the folder
BREAKER = ".lock.breaking"  # held while a stale claim is taken over
LEASE_SECONDS = 600.0
FRESH_SECONDS = 10.0  # a breaker younger than this is another worker's, taking over now
_HELD: dict[Path, RunLock] = {}  # the claims this process holds, by folder


def lease_seconds() -> float:
    """How long a claim stays live without being renewed."""
    return float(os.environ.get("SRBLOCK_LEASE_SECONDS", LEASE_SECONDS))


def heartbeat_seconds() -> float:
    """How often a holder renews its claim: a quarter of the lease, at most 30 s."""
    return min(30.0, lease_seconds() / 4)


def slurm_job() -> str:
    """This process's SLURM job (array job and task), which a requeued job keeps; '' outside SLURM."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or ""
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


def own_claim() -> str:
    """What this process writes in a claim: its id, host and SLURM job."""
    return " ".join([str(os.getpid()), socket.gethostname(), *([slurm_job()] if slurm_job() else [])])


class RunHeld(ValueError):
    """The run folder is claimed by another live worker (or was finished by one)."""


class RunLock:
    """The claim on a run folder while this process trains in it (see the module): RunHeld, in
    one line, where another live worker holds it; a dead worker's claim is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path, self.held, self.lost = Path(folder) / LOCK_FILE, False, False
        self.made: list[Path] = []  # the folders the lock made, deepest first
        self._stop = threading.Event()

    def __enter__(self) -> RunLock:
        self.made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._put():
                self.held, self.lost = True, False
                _HELD[self.path.parent] = self
                self._stop.clear()
                threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True).start()
                return self
            self._take_over(self._refuse_if_held())
        raise RunHeld(f"{self.path.parent} is being claimed by another worker")

    def _put(self) -> bool:
        """Puts this process's claim in place, whole, where there is none (False: one is there)."""
        mine = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.new")
        mine.write_text(own_claim())
        try:
            os.link(mine, self.path)  # atomic, and never seen half written
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: an exclusive create, written after
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(own_claim())
            return True
        finally:
            mine.unlink(missing_ok=True)

    def _beat(self) -> None:
        """The lease's heartbeat: the claim is renewed while this process holds it; one that is no
        longer this process's (taken over while it stalled) is noted as lost, not renewed."""
        while not self._stop.wait(heartbeat_seconds()):
            try:
                if self.path.read_text() != own_claim():
                    self.lost = True
                    return
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                return
            except OSError:  # the file system is away for a moment: the next beat tries again
                pass

    def _take_over(self, stale: str | None) -> None:
        """Removes the claim `stale` (its text) of a worker that is gone, and only that one, under
        the breaker: of several workers taking over at once, one removes it; the others find the
        breaker (or the winner's new claim) and leave."""
        if stale is None:
            return  # gone meanwhile: the next attempt takes it
        breaker = self.path.with_name(BREAKER)
        try:
            fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                if time.time() - breaker.stat().st_mtime > FRESH_SECONDS:
                    breaker.unlink(missing_ok=True)  # left by a worker that died taking over
            except OSError:
                pass
            raise RunHeld(f"{self.path.parent} is being taken over by another worker") from None
        os.close(fd)
        try:
            if self.path.read_text() == stale:
                self.path.unlink()
        except OSError:
            pass
        finally:
            breaker.unlink(missing_ok=True)

    def _refuse_if_held(self) -> str | None:
        """RunHeld while the claim's holder lives; else the stale claim's text (None: it is gone)."""
        try:
            text, age = self.path.read_text(), time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        fields = text.split()
        if len(fields) < 2 or not fields[0].isdigit():
            return text if age > FRESH_SECONDS else None  # an old claim's writer died halfway
        pid, host, job = int(fields[0]), fields[1], fields[2] if len(fields) > 2 else ""
        if job and job == slurm_job():
            return text  # this SLURM job's own claim, from before its requeue
        if age > lease_seconds():
            return text  # not renewed: its holder (or its host) is gone, or its pid was reused
        if host != socket.gethostname():
            raise RunHeld(
                f"{self.path.parent} is in use by process {pid} on {host} (its claim renewed {age:.0f} s "
                f"ago): it trains there; a claim not renewed for {lease_seconds():.0f} s is taken over"
            )
        if not process_alive(pid):
            return text
        raise RunHeld(f"{self.path.parent} is in use by process {pid} (a run trains there)")

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self._stop.set()
            _HELD.pop(self.path.parent, None)
            try:  # ours still (a lease can be taken over from a process that stalled past it)
                if self.path.read_text() == own_claim():
                    self.path.unlink()
            except OSError:
                pass
            self.held = False
            for folder in self.made:  # nothing was written (a run that could not start): no folder left
                try:
                    folder.rmdir()  # (only an empty one: another run's sibling folder keeps its parent)
                except OSError:
                    break


def claim_lost(folder: Path) -> bool:
    """Whether this process's claim on `folder` was taken over (it stalled past its lease): it must
    stop rather than write over what the new holder writes."""
    lock = _HELD.get(Path(folder))
    return lock is not None and lock.lost


def holder(folder: Path) -> str | None:
    """Why a run folder is claimed by a live worker now (RunHeld's words), or None: a look that
    takes nothing, for a command deciding whether to start a process for it at all."""
    if not (Path(folder) / LOCK_FILE).exists():
        return None
    try:
        RunLock(folder)._refuse_if_held()
    except RunHeld as err:
        return str(err)
    return None


def stalled(folder: Path) -> float | None:
    """Seconds until a claim that has missed three heartbeats runs out and can be taken over (its
    worker stalled or died on another host, or in a job whose SIGKILL left it), or None: no claim,
    or one still renewed."""
    try:
        age = time.time() - (Path(folder) / LOCK_FILE).stat().st_mtime
    except OSError:
        return None
    return max(0.0, lease_seconds() - age) if age > 3 * heartbeat_seconds() else None
