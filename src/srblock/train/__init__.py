"""Training: configs from recipes, the Fabric loops (classification, segmentation), checkpoints, run folders."""

from pathlib import Path
from typing import Any

from lightning.fabric import Fabric

from ..data import DATASETS
from .config import TrainConfig, make_config, parse_set
from .loop import train_run
from .seg_loop import train_seg_run


def run_training(fabric: Fabric, cfg: TrainConfig, folder: Path, **kwargs: Any) -> dict[str, Any]:
    """Trains one run with the loop its data set's task needs (classification or segmentation)."""
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(DATASETS)}")
    loop = train_seg_run if DATASETS[cfg.dataset].task == "segment" else train_run
    return loop(fabric, cfg, folder, **kwargs)


__all__ = ["TrainConfig", "make_config", "parse_set", "run_training", "train_run", "train_seg_run"]
