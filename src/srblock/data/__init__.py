"""Data sets (CIFAR-10/100, Fashion-MNIST, ImageNet, Cityscapes, Fashion-MNIST canvases) and their loaders.

What each data set is (`DATASETS`, catalog.py) is read without torch; the loaders are imported
when first used (`from srblock.data import load_dataset`), so the command line starts at once."""

import importlib
import importlib.util
from typing import Any

from .catalog import DATASETS, DatasetInfo

_LAZY = {  # name -> the module of this package that defines it
    "ImageSet": "datasets",
    "load_dataset": "datasets",
    "load_dataset_splits": "datasets",
    "split_train_val": "datasets",
    "DeviceLoader": "device_loader",
    "EpochSampler": "sampler",
    "SeededItems": "sampler",
    "make_dataloader": "torch_loader",
    "make_file_loader": "torch_loader",
}

__all__ = ["DATASETS", "DatasetInfo", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule: srblock.data.datasets, ...
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
