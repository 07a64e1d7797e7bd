"""CIFAR-10/100 from their python-pickle folders, read safely and checked before anything trains.

The official files are pickles. `pickle.load` would run whatever code a crafted file names, so
they are read with an unpickler that admits only what the official files contain (dicts, lists,
str/bytes, ints and numpy arrays) and refuses anything else in one line. Every batch is then
checked: its images are N x 3072 values in 0..255, it has as many labels as images, and every
label names one of the data set's classes.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

# the globals a CIFAR pickle (numpy 1 or 2, protocol 2 to 5) needs to rebuild its arrays and bytes
_SAFE_GLOBALS = {
    *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and nothing else that a pickle could name."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which no CIFAR file contains")


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR file's dict (bytes keys read as str), or a one-line ValueError naming the file."""
    try:
        with path.open("rb") as f:
            data = _CifarUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path} is not a CIFAR python pickle ({err}): refusing to load it") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable CIFAR python pickle ({reason[:120]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not the dict of a CIFAR file")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in data.items()}


def _entry(path: Path, data: dict[str, Any], key: str, expected: str) -> Any:
    if key not in data:
        raise ValueError(
            f"{path} has no {key!r} entry (expected {expected}): it is not a CIFAR file of this kind"
        )
    return data[key]


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch file's images (N x 3 x 32 x 32, uint8) and labels (N, int64), checked."""
    data = read_pickle(path)
    pixels = np.asarray(_entry(path, data, "data", f"data and {label_key}"))
    labels = np.asarray(_entry(path, data, label_key, f"data and {label_key}"))
    if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32 or not len(pixels):
        raise ValueError(f"{path} holds images of shape {pixels.shape}, not N x 3072 (32 x 32 RGB)")
    if not np.issubdtype(pixels.dtype, np.integer) or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(
            f"{path} holds pixel values outside 0..255 ({pixels.dtype}, {pixels.min()}..{pixels.max()})"
        )
    if labels.ndim != 1 or len(labels) != len(pixels):
        raise ValueError(f"{path} holds {len(pixels)} images but {labels.size} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{path} holds labels outside 0..{num_classes - 1} (found {labels.min()}..{labels.max()})"
        )
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 3, 32, 32))
    return images, torch.from_numpy(labels.astype(np.int64))


def read_names(path: Path, names_key: str, num_classes: int) -> tuple[str, ...]:
    """The class names of a meta file: one per class."""
    names = _entry(path, read_pickle(path), names_key, names_key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        count = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise ValueError(f"{path} names {count} classes in {names_key!r}, not {num_classes}")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def warn_on_checksum(path: Path, md5: str, label: str) -> None:
    """A copy that is not byte for byte the official file only warns, pointing at that file."""
    if hashlib.md5(path.read_bytes()).hexdigest() != md5:
        message = f"{label} does not match the official checksum; using it anyway"
        warnings.warn_explicit(message, UserWarning, filename=str(path), lineno=0)
