"""Segmentation runs (Cityscapes, the seg demo): iterations, poly lr, crops, multi-scale testing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..data import DATASETS
from ..schema import file_or_true, parse_hw, setting, text_of_int
from .run import TrainConfig


@dataclass
class SegmentConfig(TrainConfig):
    """Segmentation (Cityscapes, the seg demo): iterations, poly lr, crops, multi-scale testing."""

    TASK: ClassVar[str] = "segmentation"
    SEGMENTS: ClassVar[bool] = True

    iterations: int = setting(80_000, "training iterations", range="[1, inf)")
    eval_interval: int = setting(8_000, "iterations between evaluations", range="[1, inf)")
    save_interval: int = setting(
        1_000, "last.ckpt every N iterations, so a kill loses at most N", range="[1, inf)"
    )
    poly_power: float = setting(0.9, "power of the polynomial lr decay", range="(0, inf)")
    min_lr: float = setting(1e-4, "the lr the decay ends at", range="[0, inf)")
    crop_size: str = setting(
        "512x1024", "HxW of the training crop; also sizes the SR memory", parse=text_of_int,
        valid=lambda v: parse_hw(v, "crop_size") is not None,
    )  # fmt: skip
    scale_range: list[float] = setting(
        default_factory=lambda: [0.5, 2.0], help="random resize range", range="(0, inf)",
        valid=lambda v: len(v) == 2 and v[0] <= v[1], rule="must be [low, high] with 0 < low <= high",
    )  # fmt: skip
    photometric: bool = setting(True, "photometric distortion in training")
    aux_weight: float = setting(0.4, "weight of the auxiliary head's loss", range="[0, inf)")
    ms_scales: list[float] = setting(
        default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], help="multi-scale test scales",
        range="(0, inf)", valid=bool, rule="must be a non-empty list of positive scales",
    )  # fmt: skip
    ms_flip: bool = setting(True, "flipped images in the multi-scale test")
    pretrained_backbone: str | None = setting(
        None, "a weights file for the backbone (e.g. an ImageNet ResNet50)", parse=file_or_true
    )

    def weights(self) -> dict[str, Any]:
        return {"pretrained_backbone": self.pretrained_backbone}

    def training_steps(self, train_images: int, world_size: int) -> int:
        return self.iterations

    def crop_hw(self) -> tuple[int, int]:
        """crop_size as (height, width)."""
        return parse_hw(self.crop_size, "crop_size")

    def input_size(self) -> tuple[int, int, int]:
        return (DATASETS[self.dataset].input_size[0], *self.crop_hw())
