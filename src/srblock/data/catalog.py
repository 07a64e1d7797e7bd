"""What each data set is (classes, image size, normalisation, task, where its loader lives), read
without importing torch: the command line checks keys and prints its help from these facts, and
a run's loader (`DatasetInfo.load`) is imported only when the run reads its data."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CITYSCAPES_MEAN, CITYSCAPES_STD = IMAGENET_MEAN, IMAGENET_STD  # as mmsegmentation's Cityscapes configs
IGNORE_INDEX = 255  # segmentation: the label of pixels not scored


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    loader: str  # "module:function" in srblock.data: (train, test), or (train, val, test) if `own_val`
    task: str = "classify"  # or "segment": which training loop runs it
    in_memory: bool = True  # held in memory as tensors; else files read by DataLoader workers
    ignore_index: int | None = None  # segmentation: the label that marks pixels not scored
    own_val: bool = False  # the folder may hold its own validation split (else cut from training)

    def load(self, root: Path | None) -> tuple[Any, ...]:
        """The data set's splits, read from `root` (or its default place) by its loader."""
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(f"srblock.data.{module}"), function)(root)

    def stats(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Normalisation for `channels` channels: the data set's own, or their average (channel_stats)."""
        return channel_stats(self.mean, self.std, channels)


def channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A mean and std for `channels` channels: these where they count as many, else their averages
    for every channel (as timm does for a grey model made from an RGB one, and the reverse)."""
    if channels == len(mean) == len(std):
        return tuple(mean), tuple(std)
    return (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        "cifar10",
        10,
        (3, 32, 32),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "datasets:load_cifar10",
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        100,
        (3, 32, 32),
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "datasets:load_cifar100",
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), "datasets:load_fashion_mnist"
    ),
    "imagenet": DatasetInfo(
        "imagenet",
        1000,
        (3, 224, 224),
        IMAGENET_MEAN,
        IMAGENET_STD,
        "imagenet:load_imagenet",
        in_memory=False,
    ),
    # a user's class folders: classes and channels come from the run's config (config.classes)
    "folder": DatasetInfo(
        "folder",
        0,
        (3, 224, 224),
        IMAGENET_MEAN,
        IMAGENET_STD,
        "folder:load_folder",
        in_memory=False,
        own_val=True,
    ),
    "cityscapes": DatasetInfo(
        "cityscapes",
        19,
        (3, 512, 1024),
        CITYSCAPES_MEAN,
        CITYSCAPES_STD,
        "cityscapes:load_cityscapes",
        task="segment",
        in_memory=False,
        ignore_index=IGNORE_INDEX,
    ),
    "fashion_mnist_seg": DatasetInfo(
        "fashion_mnist_seg",
        11,
        (1, 64, 64),
        (0.1,),
        (0.25,),
        "datasets:load_fashion_mnist_seg",
        task="segment",
        ignore_index=IGNORE_INDEX,
    ),
}
