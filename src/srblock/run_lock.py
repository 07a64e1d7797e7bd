"""The claim on a run folder while a process trains in it, so that any number of workers (one
machine, several sharing a file system, the tasks of a SLURM array) can share one sweep: each
takes a run that no live worker holds, and the run of a worker that died is taken over.

The claim is `.lock` in the run folder, made atomically (O_CREAT | O_EXCL) and holding its
process's id and host. On the same host a claim is live while its process runs. A host cannot
see another's processes, so there the claim is a lease: its holder touches the file every
`HEARTBEAT_SECONDS`, and a claim not touched for `lease_seconds()` (10 minutes;
SRBLOCK_LEASE_SECONDS sets another) is taken over. A run taken over resumes from its last
checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from .checkpoint import process_alive

LOCK_FILE = ".lock"  # held by the process training in the folder
HEARTBEAT_SECONDS = 30.0
LEASE_SECONDS = 600.0
FRESH_SECONDS = 10.0  # an empty claim younger than this is one being written, not a dead one's


def lease_seconds() -> float:
    """How long a claim from another host stays live without a heartbeat."""
    return float(os.environ.get("SRBLOCK_LEASE_SECONDS", LEASE_SECONDS))


class RunHeld(ValueError):
    """The run folder is claimed by a live process (this host's) or a live lease (another's)."""


class RunLock:
    """The claim on a run folder while this process trains in it (see the module): a second
    process raises RunHeld, in one line, rather than train there at the same time; the claim of a
    process that has died (or a lease that has run out) is taken over. Inactive in the other
    processes of a distributed run."""

    def __init__(self, folder: Path, active: bool = True) -> None:
        self.path, self.active, self.held = Path(folder) / LOCK_FILE, active, False
        self.made: list[Path] = []  # the folders the lock made, deepest first
        self._stop = threading.Event()

    def __enter__(self) -> RunLock:
        if not self.active:
            return self
        self.made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                self._take_over(self._refuse_if_held())  # a dead process's claim, or a lease run out
                continue
            with os.fdopen(fd, "w") as f:
                f.write(holder)
            self.held = True
            self._stop.clear()
            threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True).start()
            return self
        raise RunHeld(f"{self.path.parent} is being claimed by another process: it trains there")

    def _beat(self) -> None:
        """The lease's heartbeat: the claim's time is renewed while this process holds it."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:  # gone (the run ended) or the file system is away: the next beat tries
                pass

    def _take_over(self, stale: str | None) -> None:
        """Removes the claim `stale` (its text) left by a holder that is gone, and only that one: two
        workers taking it over at once must not remove the claim the faster of them made since."""
        if stale is None:
            return  # gone meanwhile: the next attempt takes it
        aside = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.taken")
        try:
            os.rename(self.path, aside)  # atomic: of two workers, one moves it
        except FileNotFoundError:
            return
        if aside.read_text() != stale:  # a claim made meanwhile, not the stale one: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _refuse_if_held(self) -> str | None:
        """RunHeld while the claim's holder lives; else the stale claim's text (None: it is gone)."""
        try:
            text, age = self.path.read_text(), time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        try:
            pid_text, host = text.split()
            pid = int(pid_text)
        except ValueError:  # being written now, or its writer died halfway
            if age < FRESH_SECONDS:
                raise RunHeld(
                    f"{self.path.parent} is being claimed by another process: it trains there"
                ) from None
            return text
        where = self.path.parent
        if host != socket.gethostname():
            if age > lease_seconds():
                return text  # a lease run out: its holder (or its host) is gone
            raise RunHeld(
                f"{where} is in use by process {pid} on {host} (its claim renewed {age:.0f} s ago): it "
                f"trains there; a claim not renewed for {lease_seconds():.0f} s is taken over"
            )
        if not process_alive(pid):
            return text
        raise RunHeld(
            f"{where} is in use by process {pid} (a run trains there): wait for it to end, or stop it"
        )

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self._stop.set()
            try:  # ours still (a lease can be taken over from a process that stalled past it)
                if self.path.read_text() == f"{os.getpid()} {socket.gethostname()}":
                    self.path.unlink()
            except OSError:
                pass
            self.held = False
            for folder in self.made:  # nothing was written (a run that could not start): no folder left
                try:
                    folder.rmdir()  # (only an empty one: another run's sibling folder keeps its parent)
                except OSError:
                    break


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
