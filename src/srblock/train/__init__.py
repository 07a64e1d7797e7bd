"""Training: configs from recipes, the Fabric loop, checkpoints, run folders."""

from .config import TrainConfig, make_config, parse_set
from .loop import train_run

__all__ = ["TrainConfig", "make_config", "parse_set", "train_run"]
