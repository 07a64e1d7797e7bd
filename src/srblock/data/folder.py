"""A user's own images: DIR/train/<class>/*, DIR/val/<class>/* and DIR/test/<class>/* (the last two
optional), read by DataLoader workers. Class names and count come from train/'s folders, sorted.

The validation split may also be named validation/ or valid/ (Hugging Face's and timm's folders,
Kaggle's); any other folder beside train/ is refused, never ignored (eval/ too: some use it for
validation, some for test). Without a validation folder the run splits val_fraction of train/ off
for validation; without test/, the validation split is scored instead, with the last epoch's
checkpoint rather than one selected on those same images (result.json says which split was
tested and which checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets.folder import make_dataset

from .imagenet import ImageFiles
from .images import IMAGE_EXTENSIONS, checked_files, class_folders

SPLITS = ("train", "val", "test")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
KNOWN = "train/, val/ (or validation/, valid/) and test/"  # SPLIT_FOLDERS, as messages name them
NOT_DATA = ("__MACOSX",)  # what unzipping a macOS archive leaves beside the folders: never a split


def split_folders(root: str | Path) -> dict[str, Path]:
    """The folders of a folder data set's splits found in `root` (train always; val and test where
    present, under any of their names), or a one-line error for a folder beside train/ that is no
    split, or a split under two names."""
    root = Path(root).expanduser()
    names = {name: split for split, names in SPLIT_FOLDERS.items() for name in names}
    found: dict[str, Path] = {}
    folders = [
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_DATA
    ]
    for folder in sorted(folders):
        split = names.get(folder.name)
        if split is None:
            hint = " (the validation split or the test split?)" if folder.name == "eval" else ""
            raise ValueError(
                f"{folder} is no split srblock reads{hint}: a data folder holds {KNOWN}; rename it to one "
                f"of those or move it out of {root}"
            )
        if split in found:
            raise ValueError(
                f"{root} holds two {split} splits, {found[split].name}/ and {folder.name}/: keep one"
            )
        found[split] = folder
    return found


def has_val_folder(root: str | Path) -> bool:
    """Whether a folder data set has its own validation split (under any of its names): then nothing
    is held out of train/. False where `root` cannot be read (the data's loader says why)."""
    root = Path(root).expanduser()
    return root.is_dir() and any((root / name).is_dir() for name in SPLIT_FOLDERS["val"])


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """The class names of a folder data set: train/'s subfolders, sorted."""
    root = Path(root).expanduser()
    train = root / "train"
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give the folder that holds train/<class>/<image>")
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is a file: give the folder that holds train/<class>/<image>")
    near = [p.name for p in root.iterdir() if p.is_dir() and p.name.lower() == "train" and p.name != "train"]
    if not train.is_dir() and near:
        raise FileNotFoundError(
            f"{root} holds {near[0]}/, not train/: rename it (split names are lower case)"
        )
    if not train.is_dir() and root.name == "train" and class_folders(root):
        raise FileNotFoundError(
            f"{root} is a train/ folder: give the folder that holds it, {root.parent}, as --data"
        )
    if not train.is_dir():
        raise FileNotFoundError(
            f"{train} is missing: --data must hold train/<class>/<image> (and optionally the other splits "
            f"of {KNOWN}, with the same class folders)"
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
    folders = split_folders(root)
    return tuple(_split(root, folders[s].name, classes) if s in folders else None for s in SPLITS)  # type: ignore[return-value]
