"""Segmentation sample transforms: mmsegmentation's Cityscapes pipeline in torchvision v2 terms.

Training: random resize by a ratio of the image's size, random crop (padded with 0 / the ignore
label), flip, photometric distortion, normalisation. Evaluation: the whole image, normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .catalog import IGNORE_INDEX


class SegTrainTransform:
    """Random resize (ratio in `scale_range` of the image's size), random crop (padded: image 0,
    label 255), horizontal flip, photometric distortion, then float and normalised."""

    def __init__(
        self,
        crop: tuple[int, int],
        scale_range: Sequence[float],
        mean: Sequence[float],
        std: Sequence[float],
        flip: bool = True,
        photometric: bool = True,
    ) -> None:
        self.scale_range = tuple(scale_range)
        steps: list[v2.Transform] = [
            v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Mask: IGNORE_INDEX, "others": 0})
        ]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        if photometric:  # mmseg's PhotoMetricDistortion in torchvision terms (hue 18/180 of the circle)
            steps.append(v2.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.1))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.rest = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = self.scale_range
        ratio = float(torch.empty(()).uniform_(low, high))
        size = [max(1, round(image.shape[-2] * ratio)), max(1, round(image.shape[-1] * ratio))]
        image = TF.resize(tv_tensors.Image(image), size, antialias=True)
        mask = TF.resize(tv_tensors.Mask(mask), size)  # nearest for masks
        image, mask = self.rest(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


class SegEvalTransform:
    """The whole image, float and normalised; the label as it is."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.normalize = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        )

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.normalize(image), mask.long()


class SegmentationTensors(torch.utils.data.Dataset):
    """In-memory images (N x C x H x W, uint8) and label maps (N x H x W, uint8), transformed per item."""

    def __init__(
        self, images: torch.Tensor, masks: torch.Tensor, classes: tuple[str, ...], transform=None
    ) -> None:
        self.images, self.masks, self.classes, self.transform = images, masks, classes, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        return self.transform(image, mask) if self.transform else (image, mask.long())

    def subset(self, index: torch.Tensor | slice) -> SegmentationTensors:
        return SegmentationTensors(self.images[index], self.masks[index], self.classes, self.transform)

    def with_transform(self, transform) -> SegmentationTensors:
        return SegmentationTensors(self.images, self.masks, self.classes, transform)
