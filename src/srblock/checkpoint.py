"""Checkpoints that survive a kill at any moment and refuse to load into the wrong run."""

from __future__ import annotations

import errno
import glob
import os
import random
import shutil
import socket
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

FORMAT = "srblock-checkpoint-1"


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


def tensors_checksum(state: Any, crc: int = 0) -> int:
    """CRC-32 of every tensor's bytes in a (nested) checkpoint state, in order: a flipped byte in
    any weight, optimiser buffer or RNG state changes it."""
    if isinstance(state, torch.Tensor):
        data = state.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        return zlib.crc32(data, crc)
    if isinstance(state, dict):
        for value in state.values():
            crc = tensors_checksum(value, crc)
    elif isinstance(state, (list, tuple)):
        for value in state:
            crc = tensors_checksum(value, crc)
    return crc


def save_atomic(path: Path, state: dict[str, Any]) -> None:
    """Writes a training checkpoint atomically (see write_atomic), with its tensors' checksum."""
    state = {"format": FORMAT, **state}
    state["checksum"] = tensors_checksum(state)
    write_atomic(path, lambda f: torch.save(state, f))


def training_state(
    config: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    **progress: Any,
) -> dict[str, Any]:
    """What a last.ckpt holds: config, model, optimiser, scheduler, the loop's progress
    (epoch or iteration, best metric) and every RNG state."""
    return {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        **progress,
        "rng": rng_state(),
    }


def load_checkpoint(path: Path, model_name: str | None = None, advice: str | None = None) -> dict[str, Any]:
    """A checkpoint, loaded with weights_only=True; a corrupt or foreign one is a clear error,
    ending in `advice` where the caller knows better than training's (predict, analyze, export)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # garbage makes the weights-only unpickler raise anything
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if reason.startswith("Weights only load failed"):  # torch's long advice on trusting pickles
            reason = "not a tensors-only torch file"
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated ({reason[:120]}): "
            + (advice or "delete it to start that run over")
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an srblock training checkpoint: "
            + (advice or "delete it or choose another --out")
        )
    if (
        "checksum" in state
        and tensors_checksum({k: v for k, v in state.items() if k != "checksum"}) != state["checksum"]
    ):
        raise ValueError(
            f"checkpoint {path} is corrupt (its tensors do not match their checksum): "
            + (advice or "delete it to start that run over")
        )
    if model_name is not None and state.get("config", {}).get("model") != model_name:
        raise ValueError(
            f"checkpoint {path} is from model {state.get('config', {}).get('model')!r}, not "
            f"{model_name!r}: " + (advice or "choose another --out, or delete the checkpoint")
        )
    return state


def rng_state() -> dict[str, Any]:
    """Every random number generator's state, as tensors and plain values (weights_only-safe)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
