"""Checkpoints that survive a kill at any moment and refuse to load into the wrong run."""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic_files import write_atomic

FORMAT = "srblock-checkpoint-1"


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
