"""A run's data as it sees it: its data set read from where it lies, cut and split by its seed."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any, NamedTuple

from .config import TrainConfig
from .data import DatasetInfo, ImageSet, load_dataset_splits, split_train_val
from .data.imagenet import ImageFiles

DATA_FILE = "data.json"  # a run folder's fingerprint of the data it trained on
SIZES_UP_TO = 100_000  # files whose sizes the fingerprint reads (more: their names only)


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
    tested = "test" if test_set is not None else "val"
    test_set = test_set if test_set is not None else val_set
    return Splits(info, train_set, val_set, test_set.subset(slice(0, cfg.limit_test)), tested)


def _split_fingerprint(split: Any, root: Path | None) -> dict[str, Any]:
    """What identifies a split without reading every image again: for image files their count and
    a hash of their relative paths (and sizes, up to SIZES_UP_TO files); for images in memory their
    count and a CRC-32 of their bytes and labels; for anything else its length."""
    if isinstance(split, ImageFiles):
        digest = hashlib.sha1()
        sized = len(split.samples) <= SIZES_UP_TO
        for path, label in split.samples:
            name = os.path.relpath(path, root) if root else os.path.basename(path)
            size = os.stat(path).st_size if sized else -1
            digest.update(f"{name}\t{size}\t{label}\n".encode())
        return {"files": len(split.samples), "sha1": digest.hexdigest()}
    if isinstance(split, ImageSet):
        crc = zlib.crc32(split.images.contiguous().numpy().tobytes())
        crc = zlib.crc32(split.labels.contiguous().numpy().tobytes(), crc)
        return {"images": len(split), "crc32": crc}
    return {"items": len(split)}


def fingerprint(splits: Splits, root: str | Path | None) -> dict[str, Any]:
    """The run's data as data.json records it: each split's fingerprint and the class names."""
    root = Path(root) if root else None
    prints = {name: _split_fingerprint(getattr(splits, name), root) for name in ("train", "val", "test")}
    return {"classes": list(getattr(splits.train, "classes", []) or []), **prints}


def check_data(folder: Path, splits: Splits, root: str | Path | None, write: bool = True) -> None:
    """Records the data a run trains on (data.json) when it starts; a run that goes on (a resume)
    must find the same data, else it stops with one line naming what changed."""
    now, path = fingerprint(splits, root), Path(folder) / DATA_FILE
    if not path.exists():  # a new run (or one from before data.json): it records its data now
        if write:
            from .runs import write_text_atomic

            write_text_atomic(path, json.dumps(now, indent=1))
        return
    before = json.loads(path.read_text())
    changed = [_what_changed(key, before.get(key), now[key]) for key in now if before.get(key) != now[key]]
    if changed:
        raise ValueError(
            f"the data are not the ones {folder} trained on ({'; '.join(changed)}): restore them, "
            "or train a new run with another --out"
        )


def _what_changed(key: str, before: Any, now: Any) -> str:
    if key == "classes" or not isinstance(before, dict):
        return f"{key}: {before} then, {now} now"
    count = next(k for k in ("files", "images", "items") if k in now)
    if before.get(count) != now[count]:
        return f"{key}: {before.get(count)} {count} then, {now[count]} now"
    return f"{key}: as many {count}, other names, sizes or contents"
