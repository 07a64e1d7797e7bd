"""Files written whole, and never over one the user wrote: a kill at any moment leaves the old
file or the new one (write_atomic), the temporaries of dead processes are cleaned, and a file at a
path srblock is to write must be one it wrote (refuse_foreign). No torch: reading a run's files
and the command line's help need none."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"  # write_atomic's temporary files: .NAME.PID@HOST.XXXX.tmp beside the file they become


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permissions any new file gets here (the umask's), for a file made through mkstemp (0600)."""
    return 0o666 & ~_umask()


def disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of space: torch.save says only that its write failed (a
    RuntimeError raised while handling the OSError that says so, or with nothing to say why)."""
    cause: BaseException | None = err
    while cause is not None:  # the error, and those it was raised while handling
        if getattr(cause, "errno", None) == errno.ENOSPC or "No space left" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return isinstance(err, (OSError, RuntimeError)) and shutil.disk_usage(folder).free < 1 << 20


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname().split('.')[0]}"


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path` (an open descriptor and its name), named after its
    process, so the one a killed process left is known as stale (remove_stale_temporaries)."""
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as err:  # named after the file asked for, not the temporary one (no permission...)
        raise type(err)(err.errno, err.strerror, str(path)) from None


def remove_stale_temporaries(path: Path) -> None:
    """Deletes the temporary files of `path` left by processes of this machine that have died
    (a kill during a write or an export): they would otherwise stay, hidden, as large as the file."""
    host = socket.gethostname().split(".")[0]
    for leftover in Path(path).parent.glob(
        f".{glob.escape(Path(path).name)}.*@{glob.escape(host)}.*{TMP_SUFFIX}"
    ):
        pid = leftover.name[len(Path(path).name) + 2 :].split("@", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            leftover.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine runs (under any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file through `write` into a temporary file beside `path`, syncs it, then renames
    it over `path`: a kill at any moment leaves the old file or the new one, never half of one. The
    file gets the permissions any new file gets (the umask's), and a full disk is a one-line
    error that keeps the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp's 0600 would hide results from collaborators
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if disk_full(err, path.parent):
            raise ValueError(
                f"no space left on device while writing {path}; the previous file is kept"
            ) from None
        raise


def refuse_foreign(path: Path, ours: Callable[[Path], bool], written_by: str) -> None:
    """A file srblock is about to replace must be one it wrote (`ours` recognises it): anything
    else at that path is the user's, and is never overwritten. A one-line error says so."""
    path = Path(path)
    if path.is_file() and not ours(path):
        raise ValueError(
            f"{path} exists and was not written by {written_by}: give another path, or move that file away"
        )


def starts_with(text: str) -> Callable[[Path], bool]:
    """`ours` for refuse_foreign: the file begins (in its first 4 KiB) with `text`."""

    def check(path: Path) -> bool:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", errors="replace").startswith(text)

    return check


def write_text_atomic(path: Path, text: str) -> None:
    """Writes a text file (UTF-8) as write_atomic writes any file."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
