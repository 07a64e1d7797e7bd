"""Small data sets in the standard on-disk layouts, written by the tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def _images(rng: np.random.Generator, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """32x32 RGB images whose colour depends on the label, so a network can learn something."""
    base = (labels[:, None] * (255 // num_classes)).astype(np.int32)
    noise = rng.integers(0, 64, size=(len(labels), 3072))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_cifar10(root: Path, per_batch: int = 100, test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        labels = rng.integers(0, 10, size=n)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": _images(rng, labels, 10), "labels": labels.tolist()}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def write_cifar100(root: Path, train: int = 300, test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        labels = rng.integers(0, 100, size=n)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": _images(rng, labels, 100), "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()}, f)
    with (folder / "meta").open("wb") as f:
        pickle.dump({"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}, f)
    return root


def write_fashion_mnist(folder: Path, train: int = 200, test: int = 50, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = b"\x00\x00\x08\x01" + n.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder
