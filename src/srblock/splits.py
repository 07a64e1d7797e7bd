"""A run's data as it sees it: its data set read from where it lies, cut and split by its seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .config import TrainConfig
from .data import DatasetInfo, load_dataset_splits, split_train_val


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
    data set has its own validation split; a folder without test/ is tested on its validation split."""
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
    tested = "test" if test_set is not None else "val"
    test_set = test_set if test_set is not None else val_set
    return Splits(info, train_set, val_set, test_set.subset(slice(0, cfg.limit_test)), tested)
