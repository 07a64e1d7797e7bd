"""A training run's configuration, one class per task: every run has `TrainConfig`'s fields; a
classification run adds epochs, schedule, attention and regulariser, and the fast path's fields
(`TensorsConfig`: CIFAR, Fashion-MNIST in memory) or the file pipeline's (`FilesConfig`); a
segmentation run counts iterations and has crops and a multi-scale test (`SegmentConfig`).

Each field says what it is where it is declared (`schema.setting`); the SR block's mirror
`SRSpec`'s (`sr_<field>`), and `cfg.sr` is the spec. keys.py checks recipes and `--set`.
"""

from __future__ import annotations

import dataclasses

from .classify import ClassifyConfig, FilesConfig, TensorsConfig
from .run import AUTO_COMPILE_STEPS, COMPILE_MODES, PRECISIONS, TRACKERS, TrainConfig, sr_key
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
    "sr_key",
    "with_seeds",
]
