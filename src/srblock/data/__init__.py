"""Data sets (CIFAR-10/100, Fashion-MNIST) as uint8 tensors, and the two ways to batch them."""

from .datasets import DATASETS, DatasetInfo, ImageSet, load_dataset, split_train_val
from .device_loader import DeviceLoader
from .torch_loader import make_dataloader

__all__ = ["DATASETS", "DatasetInfo", "DeviceLoader", "ImageSet", "load_dataset", "make_dataloader", "split_train_val"]
