"""Training on Lightning Fabric: the classification loop (classify.py), the segmentation loop
(segment.py), what both share (engine.py: the Fabric, a run's start, checkpoints and end), the
batches of a classification split (batches.py) and the lr schedules (schedule.py)."""

from pathlib import Path
from typing import Any

from lightning.fabric import Fabric

from ..config import TrainConfig
from ..runs import Interrupted, RunLock
from .classify import train_classifier
from .fabric import make_fabric
from .segment import train_segmenter


def run_training(fabric: Fabric, cfg: TrainConfig, folder: Path, **kwargs: Any) -> dict[str, Any]:
    """Trains one run with the loop its task needs (classification or segmentation); returns result.json."""
    loop = train_segmenter if cfg.SEGMENTS else train_classifier
    with RunLock(folder, active=fabric.global_rank == 0):  # one process trains in a folder at a time
        try:
            return loop(fabric, cfg, folder, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(folder) from None


__all__ = ["make_fabric", "run_training", "train_classifier", "train_segmenter"]
