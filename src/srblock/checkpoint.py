"""Checkpoints that survive a kill at any moment and refuse to load into the wrong run."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

FORMAT = "srblock-checkpoint-1"


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file through `write` into a temporary file beside `path`, syncs it, then renames
    it over `path`: a kill at any moment leaves the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(path: Path, state: dict[str, Any]) -> None:
    """Writes a training checkpoint atomically (see write_atomic)."""
    write_atomic(path, lambda f: torch.save({"format": FORMAT, **state}, f))


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


def load_checkpoint(path: Path, model_name: str | None = None) -> dict[str, Any]:
    """A checkpoint, loaded with weights_only=True; a corrupt or foreign one is a clear error."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated ({reason[:120]}): delete it to start that run over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an srblock training checkpoint: delete it or choose another --out")
    if model_name is not None and state.get("config", {}).get("model") != model_name:
        raise ValueError(
            f"checkpoint {path} is from model {state.get('config', {}).get('model')!r}, not "
            f"{model_name!r}: choose another --out, or delete the checkpoint"
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
