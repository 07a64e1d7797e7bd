"""Cityscapes from its standard folders (leftImg8bit/ and gtFine/), and segmentation transforms.

Files are found by torchvision's `Cityscapes` (which also names the classes); labelIds become the
19 trainIds through its class table, everything else 255, the ignore index.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets import Cityscapes
from torchvision.io import ImageReadMode, decode_image, read_file

from .catalog import IGNORE_INDEX
from .images import read_image

CITYSCAPES_CLASSES = tuple(c.name for c in Cityscapes.classes if 0 <= c.train_id < IGNORE_INDEX)


def train_id_lut() -> torch.Tensor:
    """A 256-entry uint8 table labelId -> trainId (19 classes 0..18, 255 for the rest)."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    for c in Cityscapes.classes:
        if c.id >= 0 and 0 <= c.train_id < IGNORE_INDEX:
            lut[c.id] = c.train_id
    return lut


class SegmentationFiles(Dataset):
    """(image file, label file) pairs; labels are mapped through `lut` (labelId -> trainId)."""

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        classes: tuple[str, ...],
        lut: torch.Tensor | None = None,
        transform=None,
    ) -> None:
        self.pairs, self.classes, self.lut, self.transform = pairs, classes, lut, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path, 3, ": remove or replace it, then resume")
        label = decode_image(read_file(label_path), mode=ImageReadMode.GRAY)[0]
        if self.lut is not None:
            label = self.lut[label.long()]
        if label.shape != image.shape[-2:]:
            raise ValueError(
                f"{label_path} is {tuple(label.shape)} but its image {image_path} "
                f"is {tuple(image.shape[-2:])}"
            )
        return self.transform(image, label) if self.transform else (image, label.long())

    def subset(self, index: torch.Tensor | slice) -> SegmentationFiles:
        picked = self.pairs[index] if isinstance(index, slice) else [self.pairs[i] for i in index.tolist()]
        return SegmentationFiles(picked, self.classes, self.lut, self.transform)

    def with_transform(self, transform) -> SegmentationFiles:
        return SegmentationFiles(self.pairs, self.classes, self.lut, transform)


def cityscapes_split(root: Path, split: str) -> SegmentationFiles:
    """The fine-annotated `split` (train or val) of a Cityscapes folder, every image with its labelIds."""
    try:
        found = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
    except RuntimeError:
        raise FileNotFoundError(
            f"{root} is not a Cityscapes folder: it needs leftImg8bit/{split}/<city>/*_leftImg8bit.png and "
            f"gtFine/{split}/<city>/*_gtFine_labelIds.png (unpack leftImg8bit_trainvaltest.zip and "
            "gtFine_trainvaltest.zip there)"
        ) from None
    except (FileNotFoundError, NotADirectoryError) as err:
        raise FileNotFoundError(
            f"{root}: a city folder lacks its gtFine counterpart ({err.filename})"
        ) from None
    pairs = sorted(
        (image, targets[0])
        for image, targets in zip(found.images, found.targets)
        if image.endswith("_leftImg8bit.png")
    )
    if not pairs:
        raise FileNotFoundError(
            f"{root}/leftImg8bit/{split} holds no *_leftImg8bit.png images in city folders"
        )
    missing = [label for _, label in pairs if not Path(label).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(pairs)} images in {root}/leftImg8bit/{split} have no labelIds file "
            f"(first: {missing[0]}): unpack gtFine_trainvaltest.zip into {root}"
        )
    return SegmentationFiles(pairs, CITYSCAPES_CLASSES, train_id_lut())


def load_cityscapes(root: Path | None) -> tuple[SegmentationFiles, SegmentationFiles]:
    """(train, val): the 2,975 training and 500 validation images of the standard layout."""
    if root is None:
        raise FileNotFoundError(
            "cityscapes needs a data folder: pass --data DIR, the folder that holds leftImg8bit/ and gtFine/"
        )
    root = Path(root).expanduser()
    return cityscapes_split(root, "train"), cityscapes_split(root, "val")
