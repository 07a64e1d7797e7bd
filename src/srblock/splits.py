"""A run's data as it sees it: its data set read from where it lies, cut and split by its seed."""

from __future__ import annotations

import hashlib
import os
import random
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .checkpoint import tensors_checksum
from .config import TrainConfig
from .data import DatasetInfo, ImageSet, load_dataset_splits, split_train_val
from .data.imagenet import ImageFiles, check_jpegs

SIZES_UP_TO = 100_000  # files whose sizes and ends the fingerprint reads (more: their names only)
ENDS = 4096  # bytes read from each end of a file for the fingerprint of its content


def data_root(cfg: TrainConfig, given: str | Path | None = None) -> Path | None:
    """Where to read a run's data: `given` (--data) if any, else where the run read it."""
    if given is not None:
        return Path(given).expanduser()
    if cfg.data_dir is None:
        return None
    if not Path(cfg.data_dir).exists():
        raise FileNotFoundError(
            f"{cfg.data_dir}, the data folder this run was trained from, is gone: "
            "pass --data DIR where it lies now"
        )
    return Path(cfg.data_dir)


class Splits(NamedTuple):
    info: DatasetInfo
    train: Any
    val: Any
    test: Any
    tested: str = "test"  # the split the test scores come from ("val" for a folder without test/)


def load_splits(cfg: TrainConfig, given_root: str | Path | None = None) -> Splits:
    """(info, train, validation, test) as a run sees them: cut to limit_train / limit_test, the
    training set split by the seed (an empty validation split when val_fraction is 0) unless the
    data set has its own validation split; a folder without test/ is tested on its validation split
    (with the last epoch's checkpoint: train/classify.py)."""
    info, train_set, val_set, test_set = load_dataset_splits(cfg.dataset, data_root(cfg, given_root))
    recorded = cfg.class_names()
    if recorded and list(train_set.classes) != list(recorded):  # a folder whose classes changed
        differ = sorted(set(train_set.classes) ^ set(recorded))[:3] or ["their order"]
        raise ValueError(
            f"the data's classes are not the run's (config.yaml: {len(recorded)}; now "
            f"{len(train_set.classes)}; e.g. {', '.join(differ)}): restore the folder, or train a new run"
        )
    train_set = train_set.subset(slice(0, cfg.limit_train))
    if val_set is None:
        train_set, val_set = split_train_val(train_set, cfg.val_fraction, cfg.seed)
    if test_set is None and len(val_set) == 0:
        raise ValueError(
            f"the data have no test split and val_fraction={cfg.val_fraction:g} holds no images out of "
            "the training split: there is nothing to score the run on; set val_fraction (e.g. 0.1), or "
            "add val/ or test/ class folders"
        )
    if getattr(cfg, "gpu_decode", False):
        for split in (train_set, val_set, test_set):
            if isinstance(split, ImageFiles):
                check_jpegs(split)
    tested = "test" if test_set is not None else "val"
    test_set = test_set if test_set is not None else val_set
    return Splits(info, train_set, val_set, test_set.subset(slice(0, cfg.limit_test)), tested)


def _ends(path: str) -> bytes:
    """A file's first and last ENDS bytes (all of a smaller file): two pictures of the same size
    swapped between classes differ there (compressed pixels), at the cost of two small reads."""
    with open(path, "rb") as f:
        head = f.read(ENDS)
        f.seek(max(len(head), os.fstat(f.fileno()).st_size - ENDS))
        return head + f.read()


def _split_fingerprint(split: Any, root: Path | None) -> dict[str, Any]:
    """What identifies a split without reading every image again: for image files their count, a
    hash of their relative paths, labels and sizes (`sha1`), and a hash of each file's first and
    last 4 KiB (`ends_sha1`: its content, cheaply), sizes and ends up to SIZES_UP_TO files; for
    images in memory their count and a CRC-32 of their bytes and labels; else its length."""
    if isinstance(split, ImageFiles):
        digest, ends = hashlib.sha1(), hashlib.sha1()
        sized = len(split.samples) <= SIZES_UP_TO
        for path, label in split.samples:
            name = os.path.relpath(path, root) if root else os.path.basename(path)
            size = os.stat(path).st_size if sized else -1
            digest.update(f"{name}\t{size}\t{label}\n".encode())
        if not sized:
            return {"files": len(split.samples), "sha1": digest.hexdigest()}
        with ThreadPoolExecutor(max_workers=8) as pool:  # the time is the disk's
            for chunk in pool.map(_ends, [path for path, _ in split.samples]):
                ends.update(hashlib.sha1(chunk).digest())
        return {"files": len(split.samples), "sha1": digest.hexdigest(), "ends_sha1": ends.hexdigest()}
    if isinstance(split, ImageSet):
        crc = zlib.crc32(split.images.contiguous().numpy().tobytes())
        crc = zlib.crc32(split.labels.contiguous().numpy().tobytes(), crc)
        return {"images": len(split), "crc32": crc}
    crc = _items_checksum(split) if len(split) else None
    return {"items": len(split), **({"items_crc32": crc} if crc is not None else {})}


def listed_labels(data: Any) -> torch.Tensor | None:
    """The class indices a data set lists (torchvision's `targets`, or `labels`), flat, where they
    are whole numbers and its items give them (no `target_transform` changes them); else None."""
    listed = getattr(data, "targets", None)
    listed = listed if listed is not None else getattr(data, "labels", None)
    if listed is None or getattr(data, "target_transform", None):
        return None
    try:
        return torch.as_tensor(listed).flatten().long()
    except (TypeError, ValueError, RuntimeError):  # not numbers
        return None


def _items_checksum(split: Any) -> int | None:
    """A data set given in Python (srblock.fit), cheaply: a CRC of its first and last items (their
    random transforms drawn under a fixed seed of the CPU generators) and of the labels it lists,
    so that other data of the same length are told apart; None where two readings differ (a
    transform with a random generator of its own), which leaves its length and labels to tell."""
    readings = [_first_and_last(split) for _ in range(2)]
    labels = listed_labels(split)
    listed = [labels] if labels is not None else []
    if readings[0] != readings[1]:
        return tensors_checksum(listed) if listed else None
    return tensors_checksum(listed, readings[0])


def _first_and_last(split: Any) -> int:
    """CRC of a data set's first and last items, each read with the CPU's generators (torch's,
    Python's, NumPy's) seeded by its index and restored after: no device generator is touched."""
    state = random.getstate(), np.random.get_state()
    items = []
    with torch.random.fork_rng(devices=[]):
        for index in sorted({0, len(split) - 1}):
            random.seed(index), np.random.seed(index), torch.default_generator.manual_seed(index)
            image, label = split[index]
            items += [torch.as_tensor(image), torch.as_tensor(label)]
    random.setstate(state[0])
    np.random.set_state(state[1])
    return tensors_checksum(items)


def fingerprint(splits: Splits, root: str | Path | None) -> dict[str, Any]:
    """The run's data as data.json records it: each split's fingerprint and the class names."""
    root = Path(root) if root else None
    prints = {name: _split_fingerprint(getattr(splits, name), root) for name in ("train", "val", "test")}
    return {"classes": list(getattr(splits.train, "classes", []) or []), **prints}


def fingerprint_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the data `now` differ from those fingerprinted `before` (data.json), one phrase a part."""
    return [_what_changed(k, before.get(k), now[k]) for k in now if before.get(k) != now[k]]


def _what_changed(key: str, before: Any, now: Any) -> str:
    if key == "classes" or not isinstance(before, dict):
        return f"{key}: {before} then, {now} now"
    count = next(k for k in ("files", "images", "items") if k in now)
    if before.get(count) != now[count]:
        return f"{key}: {before.get(count)} {count} then, {now[count]} now"
    if "sha1" in now and before.get("sha1") == now["sha1"]:
        return f"{key}: the same names, labels and sizes, other contents"
    return f"{key}: as many {count}, other names, labels, sizes or contents"
