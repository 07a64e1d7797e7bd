"""ImageNet from its standard folders (train/ and val/, one folder per class), read by workers.

Transforms are the PyTorch ImageNet example's (RandomResizedCrop + flip for training, resize to
size / 0.875 + centre crop for validation), on uint8 tensors decoded by torchvision.io. With
`encoded=True` the data set hands out the JPEG bytes instead, for `decode_batch` to decode a
whole batch on the GPU (torchvision.io.decode_jpeg on cuda) and augment it there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import make_dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

from .catalog import IMAGENET_MEAN, IMAGENET_STD
from .images import IMAGE_EXTENSIONS, checked_files, class_folders, decode


def imagenet_transform(
    train: bool,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: str = "rrc",
    crop_padding: int = 4,
    flip: bool = True,
) -> v2.Compose:
    """Transforms on uint8 CHW tensors (CPU or GPU). `rrc`: the PyTorch ImageNet example's (random-
    resized crop + flip; validation resizes to size / 0.875 and centre-crops), for photos.
    `padcrop`: resize to the size, then CIFAR's pad-crop (padding `crop_padding` per 32 px) + flip,
    for small images whose every pixel counts; validation only resizes."""
    if augment == "padcrop":
        padding = max(1, round(crop_padding * image_size / 32))
        steps = [v2.Resize((image_size, image_size), antialias=True)]
        if train:
            steps.append(v2.RandomCrop(image_size, padding=padding))
    elif train:
        steps = [v2.RandomResizedCrop(image_size, antialias=True)]
    else:
        steps = [v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size)]
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class ImageFiles(Dataset):
    """Labelled image files; an item is (transformed image, label), or (JPEG bytes, label) when encoded."""

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: tuple[str, ...],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        encoded: bool = False,
        channels: int = 3,
    ) -> None:
        self.samples, self.classes, self.transform, self.encoded = samples, classes, transform, encoded
        self.channels = channels  # grey (1) or RGB (3), whatever the file holds

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        data = read_file(path)
        if self.encoded:
            return data, label
        image = decode(data, self.channels, path, ": remove or replace it, then resume")
        return (self.transform(image) if self.transform else image), label

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples])

    def subset(self, index: torch.Tensor | slice) -> ImageFiles:
        picked = (
            self.samples[index] if isinstance(index, slice) else [self.samples[i] for i in index.tolist()]
        )
        return ImageFiles(picked, self.classes, self.transform, self.encoded, self.channels)

    def with_transform(
        self, transform: Callable | None, encoded: bool = False, channels: int | None = None
    ) -> ImageFiles:
        return ImageFiles(self.samples, self.classes, transform, encoded, channels or self.channels)


def collate_encoded(
    batch: list[tuple[torch.Tensor, int]],
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A batch of JPEG byte tensors (of different lengths) packed into one (bytes, lengths) pair:
    one shared-memory block for the worker to hand over, split again by `decode_batch`."""
    data = [d for d, _ in batch]
    packed = (torch.cat(data), torch.tensor([len(d) for d in data]))
    return packed, torch.tensor([label for _, label in batch])


JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")


def check_jpegs(files: ImageFiles) -> None:
    """gpu_decode decodes JPEGs only (nvjpeg): a file of another format is one line before the
    run starts, not the decoder's traceback in its first batch."""
    others = [path for path, _ in files.samples if Path(path).suffix.lower() not in JPEG_EXTENSIONS]
    if others:
        more = f" and {len(others) - 1} more files are not" if len(others) > 1 else " is not"
        raise ValueError(
            f"gpu_decode=true decodes JPEG files only, and {others[0]}{more}: set gpu_decode=false "
            "(the workers decode every format)"
        )


def decode_batch(
    encoded: tuple[torch.Tensor, torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
) -> torch.Tensor:
    """Decodes a packed batch of JPEGs on `device` (nvjpeg on a GPU) and transforms each image there."""
    data, lengths = encoded
    try:
        images = decode_jpeg(list(torch.split(data, lengths.tolist())), mode=ImageReadMode.RGB, device=device)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:  # a file named .jpg that holds another format
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ValueError(
            f"a batch holds a file that is not a JPEG ({reason}): set gpu_decode=false (the workers "
            "decode every format)"
        ) from None
    return torch.stack([transform(image) for image in images])


def _class_folder(root: Path, split: str) -> tuple[list[str], dict[str, int]]:
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ImageNet folder {folder} is missing: --data must hold train/ and val/, each with one "
            "folder per class (n01440764/...), as torchvision's ImageFolder reads them"
        )
    classes = class_folders(folder)
    if not classes:
        raise FileNotFoundError(
            f"{folder} holds no class folders: ImageNet's {split}/ needs one folder per class with the "
            "images inside (val/ too: sort the flat validation images into class folders first)"
        )
    return classes, {name: i for i, name in enumerate(classes)}


def load_imagenet(root: Path | None) -> tuple[ImageFiles, ImageFiles]:
    """(train, val) file lists from `root`/train and `root`/val; the class folders must agree."""
    if root is None:
        raise FileNotFoundError(
            "imagenet needs a data folder: pass --data DIR, the folder that holds train/ and val/"
        )
    root = Path(root).expanduser()
    splits = {}
    for split in ("train", "val"):
        classes, class_to_idx = _class_folder(root, split)
        try:
            samples = make_dataset(str(root / split), class_to_idx, extensions=IMAGE_EXTENSIONS)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{root / split} has class folders without images ({', '.join(IMAGE_EXTENSIONS)}): "
                "every class folder needs at least one image"
            ) from None
        splits[split] = ImageFiles(checked_files(root / split, samples, classes), tuple(classes))
    if splits["train"].classes != splits["val"].classes:
        only = sorted(set(splits["train"].classes) ^ set(splits["val"].classes))[:3]
        raise ValueError(
            f"{root}/train and {root}/val have different class folders (e.g. {', '.join(only)}): "
            "both need the same classes"
        )
    return splits["train"], splits["val"]
