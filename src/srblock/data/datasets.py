"""The data sets by name: CIFAR-10/100 and Fashion-MNIST in memory, ImageNet and Cityscapes as files.

CIFAR-10/100 (python-pickle folders) and Fashion-MNIST (IDX files) fit in memory (and on a GPU)
as uint8 tensors N x C x H x W; the loaders normalise and augment batches from those. ImageNet
(imagenet.py) and Cityscapes (cityscapes.py) stay files that DataLoader workers read.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import cifar
from .canvas import canvas_split
from .catalog import DATASETS, DatasetInfo

__all__ = ["DATASETS", "DatasetInfo", "ImageSet", "load_dataset", "load_dataset_splits", "split_train_val"]

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class ImageSet:
    """Images (N x C x H x W, uint8) and labels (N, int64) of one split, with class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)


def _cifar(
    folder_name: str,
    train_files: list[tuple[str, str]],
    test_files: list[tuple[str, str]],
    meta_file: str,
    label_key: str,
    names_key: str,
    num_classes: int,
    url: str,
) -> Callable[[Path | None], tuple[ImageSet, ImageSet]]:
    """A loader for one CIFAR layout; the md5 lists are torchvision's (a mismatch only warns)."""

    def load(root: Path | None) -> tuple[ImageSet, ImageSet]:
        if root is None:
            raise FileNotFoundError(
                f"{folder_name} needs a data folder: pass --data DIR, the folder that holds {folder_name}/"
            )
        folder = Path(root).expanduser() / folder_name
        expected = [name for name, _ in train_files + test_files] + [meta_file]
        missing = [name for name in expected if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)} (expected {', '.join(expected)}): "
                f"download {url} and unpack it into {Path(root).expanduser()}"
            )
        for name, md5 in train_files + test_files:
            cifar.warn_on_checksum(folder / name, md5, f"{folder_name}/{name}")
        classes = cifar.read_names(folder / meta_file, names_key, num_classes)

        def read(files: list[tuple[str, str]]) -> ImageSet:
            batches = [cifar.read_batch(folder / name, label_key, num_classes) for name, _ in files]
            return ImageSet(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), classes)

        return read(train_files), read(test_files)

    return load


def _read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST format), gzipped or not, as a uint8 tensor of its dimensions."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path} is not a readable gzip file ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=min(len(raw), 4 + 4 * ndim))
    if len(raw) < 4 + 4 * ndim or data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return torch.from_numpy(data.reshape(dims).copy())


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images (N x 1 x 28 x 28) and their labels (N), checked against each other."""
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"{images_path} holds images of shape {tuple(images.shape)}, not N x 28 x 28")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path} holds {labels.numel()} labels for the {len(images)} images of {images_path}"
        )
    if len(labels) and int(labels.max()) >= len(FASHION_CLASSES):
        raise ValueError(
            f"{labels_path} holds labels outside 0..{len(FASHION_CLASSES) - 1} (max {int(labels.max())})"
        )
    return images[:, None], labels.long()


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_fashion_mnist(root: Path | None) -> tuple[ImageSet, ImageSet]:
    """From --data (DIR or DIR/fashion-mnist) or else the Debian package's folder."""
    names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    candidates = (
        [FASHION_MNIST_SYSTEM_DIR]
        if root is None
        else [Path(root).expanduser() / "fashion-mnist", Path(root).expanduser()]
    )

    def find(folder: Path, name: str) -> Path | None:
        return next((folder / n for n in (name + ".gz", name) if (folder / n).is_file()), None)

    for folder in candidates:
        paths = [find(folder, name) for name in names]
        if all(paths):
            return (
                ImageSet(*_idx_pair(paths[0], paths[1]), FASHION_CLASSES),
                ImageSet(*_idx_pair(paths[2], paths[3]), FASHION_CLASSES),
            )
    where = " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {where} (expected {', '.join(n + '.gz' for n in names)}): "
        "install it with `apt-get install dataset-fashion-mnist`, or pass --data DIR holding those files"
    )


def load_fashion_mnist_seg(root: Path | None) -> tuple[Any, Any]:
    """8,000 training canvases from Fashion-MNIST's training images, 1,000 test ones from its test images."""
    train, test = load_fashion_mnist(root)
    return (
        canvas_split(train.images, train.labels, train.classes, 8000, seed=0),
        canvas_split(test.images, test.labels, test.classes, 1000, seed=1),
    )


_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

load_cifar10 = _cifar(
    "cifar-10-batches-py",
    [
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ],
    [("test_batch", "40351d587109b95175f43aff81a1287e")],
    "batches.meta",
    "labels",
    "label_names",
    10,
    _CIFAR10_URL,
)
load_cifar100 = _cifar(
    "cifar-100-python",
    [("train", "16019d7e3df5f24257cddd939b257f8d")],
    [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")],
    "meta",
    "fine_labels",
    "fine_label_names",
    100,
    _CIFAR100_URL,
)


def load_dataset(name: str, root: str | Path | None) -> tuple[DatasetInfo, Any, Any]:
    """The (info, train, test) of a data set by name, read from `root` (or its default place); a
    folder without test/ is tested on its val/."""
    info, train, val, test = load_dataset_splits(name, root)
    return info, train, test if test is not None else val


def load_dataset_splits(name: str, root: str | Path | None) -> tuple[DatasetInfo, Any, Any, Any]:
    """(info, train, val, test); val is None unless the data set has its own validation split."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    info = DATASETS[name]
    loaded = info.load(Path(root) if root is not None else None)
    if not info.own_val:
        return info, loaded[0], None, loaded[1]
    return info, *loaded


def split_train_val(train: Any, val_fraction: float, seed: int) -> tuple[Any, Any]:
    """The paper's 90/10 split of a training set (anything with `subset`); which images go where
    depends on the seed."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * len(train)))
    return train.subset(order[n_val:]), train.subset(order[:n_val])
