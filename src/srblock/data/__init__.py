"""Data sets (CIFAR-10/100, Fashion-MNIST, ImageNet, Cityscapes, Fashion-MNIST canvases) and their loaders."""

from .datasets import DATASETS, DatasetInfo, ImageSet, load_dataset, load_dataset_splits, split_train_val
from .device_loader import DeviceLoader
from .sampler import EpochSampler, SeededItems
from .torch_loader import make_dataloader, make_file_loader

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DeviceLoader",
    "EpochSampler",
    "ImageSet",
    "SeededItems",
    "load_dataset",
    "load_dataset_splits",
    "make_dataloader",
    "make_file_loader",
    "split_train_val",
]
