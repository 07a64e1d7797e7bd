"""A user's own images: DIR/train/<class>/*, DIR/val/<class>/* and DIR/test/<class>/* (the last two
optional), read by DataLoader workers. Class names and count come from train/'s folders, sorted.

Without val/, the run splits val_fraction of train/ off for validation; without test/, the scores
reported as the test's are val/'s (result.json says which split was tested).
"""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets.folder import make_dataset

from .imagenet import ImageFiles
from .images import IMAGE_EXTENSIONS, checked_files, class_folders

SPLITS = ("train", "val", "test")


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """The class names of a folder data set: train/'s subfolders, sorted."""
    root = Path(root).expanduser()
    train = root / "train"
    if not train.is_dir():
        raise FileNotFoundError(
            f"{train} is missing: --data must hold train/<class>/<image> (and optionally val/ and "
            "test/ with the same class folders)"
        )
    classes = class_folders(train)
    if not classes:
        raise FileNotFoundError(
            f"{train} holds no class folders: put each class's images in a folder of its own, "
            "train/<class>/<image>"
        )
    if len(classes) < 2:
        raise ValueError(f"{train} holds one class folder ({classes[0]}): a classifier needs two or more")
    return tuple(classes)


def _split(root: Path, split: str, classes: tuple[str, ...]) -> ImageFiles:
    folder = root / split
    found = tuple(class_folders(folder))
    if found != classes:
        differ = sorted(set(found) ^ set(classes))[:3]
        raise ValueError(
            f"{folder} has other class folders than {root / 'train'} (e.g. {', '.join(differ)}): "
            "every split needs the same classes"
        )
    samples = make_dataset(
        str(folder),
        {name: i for i, name in enumerate(classes)},
        extensions=IMAGE_EXTENSIONS,
        allow_empty=True,
    )
    samples = checked_files(folder, samples, classes)
    seen = {label for _, label in samples}
    empty = [c for i, c in enumerate(classes) if i not in seen]
    if empty:
        raise ValueError(
            f"{folder} has class folders without images ({', '.join(empty[:3])}): every class needs at "
            f"least one image ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return ImageFiles(samples, classes)


def load_folder(root: str | Path | None) -> tuple[ImageFiles, ImageFiles | None, ImageFiles | None]:
    """(train, val, test) of a folder data set; val and test are None where the folder lacks them."""
    if root is None:
        raise FileNotFoundError(
            "folder runs need a data folder: pass --data DIR, the folder that holds train/<class>/<image>"
        )
    root = Path(root).expanduser()
    classes = folder_classes(root)
    return tuple(_split(root, s, classes) if (root / s).is_dir() else None for s in SPLITS)  # type: ignore[return-value]
