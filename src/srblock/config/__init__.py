"""A training run's configuration, one class per task: every run has `TrainConfig`'s fields; a
classification run adds epochs, schedule, attention and regulariser, and the fast path's fields
(`TensorsConfig`: CIFAR, Fashion-MNIST in memory) or the file pipeline's (`FilesConfig`); a
segmentation run counts iterations and has crops and a multi-scale test (`SegmentConfig`).

Each field says what it is where it is declared (`schema.setting`). The SR block is one field,
`cfg.sr`, an `SRSpec`, written flat as the keys `sr_<field>` (`TrainConfig.key_fields`). keys.py
checks recipes and `--set`, and builds a config from flat keys.
"""

from __future__ import annotations

import dataclasses

from .classify import ClassifyConfig, FilesConfig, TensorsConfig
from .run import AUTO_COMPILE_STEPS, COMPILE_MODES, PRECISIONS, TRACKERS, TrainConfig, in_spec
from .segment import SegmentConfig

CONFIGS = (TensorsConfig, FilesConfig, SegmentConfig)


def with_seeds(cfg: TrainConfig, seeds: list[int] | None) -> list[TrainConfig]:
    """One config per seed (the config's own seed when none are given), each seed once."""
    return [dataclasses.replace(cfg, seed=s) for s in dict.fromkeys(seeds or [cfg.seed])]


__all__ = [
    "AUTO_COMPILE_STEPS",
    "COMPILE_MODES",
    "CONFIGS",
    "PRECISIONS",
    "TRACKERS",
    "ClassifyConfig",
    "FilesConfig",
    "SegmentConfig",
    "TensorsConfig",
    "TrainConfig",
    "in_spec",
    "with_seeds",
]
