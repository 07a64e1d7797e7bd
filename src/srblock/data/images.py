"""What an image file is to srblock: the formats it reads, one decoder that every reader uses
(class folders, ImageNet, Cityscapes, `predict`), and a probe of a split's files before training.

Every image becomes uint8 C x H x W with the run's channels (1 or 3), whatever the file holds, by
rules stated once: an animated GIF gives its first frame (an animated WebP, which torchvision
cannot decode, is refused before training); 16 bits give their top 8 (the
0-255 scale the models are normalised on); an alpha channel is dropped (as PIL's convert does);
colour becomes grey by luma, grey becomes colour by repeating it; a palette is expanded.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2.functional import rgb_to_grayscale

# what torchvision.io.decode_image reads (PIL's longer list, e.g. .bmp and .tif, it does not)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp")
UNREAD_IMAGES = (  # images it would drop: refused, never skipped
    ".bmp", ".dib", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".heic", ".heif", ".avif", ".ico",
    ".jxl", ".jp2", ".j2k", ".psd", ".svg", ".dng", ".cr2", ".nef", ".arw", ".raw", ".exr", ".hdr", ".tga",
)  # fmt: skip
DECODED_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP")  # PIL's names of the formats decode_image reads


class UnreadableImage(ValueError):
    """An image file that cannot be decoded: the run stops and names it (a resume goes on once it
    is removed or replaced)."""


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A decoded image (C x H x W, or N x C x H x W for an animation; uint8 or uint16) as uint8
    C x H x W with `channels` (1 or 3), by the rules in this module's docstring."""
    if image.dim() == 4:  # an animation: its first frame
        image = image[0]
    if image.dtype == torch.uint16:
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    if image.shape[0] in (2, 4):  # grey + alpha, RGB + alpha
        image = image[:-1]
    if channels == 1 and image.shape[0] == 3:
        image = rgb_to_grayscale(image)
    elif channels == 3 and image.shape[0] == 1:
        image = image.expand(3, -1, -1).contiguous()
    return image


def decode(data: torch.Tensor, channels: int, path: str | os.PathLike, advice: str = "") -> torch.Tensor:
    """A file's bytes (torchvision.io.read_file) as uint8 C x H x W with `channels`, or a one-line
    UnreadableImage naming `path` (and `advice`: what to do)."""
    # JPEG and PNG convert in the decoder (CMYK, palettes); WebP and GIF, which would only warn that
    # they cannot, come as they are and to_channels converts them
    as_is = bytes(data[:4].tolist()) in (b"GIF8", b"RIFF")
    mode = ImageReadMode.UNCHANGED if as_is else ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        image = decode_image(data, mode=mode)
    except RuntimeError as err:
        raise UnreadableImage(f"{path} cannot be decoded as an image ({_reason(err)}){advice}") from None
    return to_channels(image, channels)


def read_image(path: str | os.PathLike, channels: int, advice: str = "") -> torch.Tensor:
    """An image file as uint8 C x H x W with `channels`, or a one-line UnreadableImage."""
    try:
        data = read_file(str(path))
    except RuntimeError as err:  # an empty file: torchvision's C++ message
        raise UnreadableImage(f"{path} cannot be read as an image ({_reason(err)}){advice}") from None
    return decode(data, channels, path, advice)


def _reason(err: Exception) -> str:
    """A decoder's message without torchvision's C++ source location ("decode_webp, /__w/...cpp:58, ")."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"^\w+, \S+\.(cpp|h):\d+, ", "", text)


def _problem(path: str) -> tuple[str, str] | None:
    """Why a file is no image srblock reads, and what to do (from its header: no pixel is
    decoded), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # a large image is not a bomb here: it is the user's own
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                kind, animated = image.format, getattr(image, "is_animated", False)
    except Image.DecompressionBombError as err:
        return f"is too large to read safely ({_reason(err).split('.')[0]})", "make it smaller"
    except UnidentifiedImageError:
        return "is not an image (text, or a format nothing here reads)", "remove or replace it"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})", "remove or replace it"
    if kind not in DECODED_FORMATS:
        return f"is a {kind} image under another name", "convert it to PNG or JPEG"
    if kind == "WEBP" and animated:
        return (
            "is an animated WebP, which torchvision cannot decode",
            "convert it (or its first frame) to PNG",
        )
    return None


def _walk(folder: Path) -> list[Path]:
    """Every file under `folder` that is not hidden, through symbolic links (each folder once, so
    a link back up ends), as torchvision's make_dataset lists them."""
    files, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(top) / n for n in names if not n.startswith(".")]
    return files


def class_folders(folder: Path) -> list[str]:
    """A split's class folders, sorted, through links; hidden ones (.ipynb_checkpoints, .git) are
    not classes (torchvision's find_classes counts them)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def checked_files(
    folder: Path, samples: list[tuple[str, int]], classes: Sequence[str]
) -> list[tuple[str, int]]:
    """A split's image files but hidden ones, each once (a symbolic link looping back lists a file
    many times), each in its own class (a link into another class folder would relabel its
    files), and each an image srblock reads: an empty, dangling or undecodable file, or an image
    in a format that would be dropped, is a one-line error now rather than a traceback (or a
    smaller data set) later."""
    image_paths(folder)  # (make_dataset listed the samples: this refuses the formats it skipped)
    split = os.path.realpath(folder)
    own = [os.path.realpath(folder / name) for name in classes]
    unique, seen = [], set()
    for path, label in samples:
        if any(part.startswith(".") for part in Path(path).relative_to(folder).parts):
            continue  # hidden: a notebook's checkpoints, macOS's ._ files
        real = os.path.realpath(path)
        if _inside(real, split) and not _inside(real, own[label]):
            raise ValueError(
                f"{path} is a link into another class's folder ({real}): it would be trained as "
                f"{classes[label]}; remove the link"
            )
        if real in seen:
            continue
        seen.add(real)
        try:
            size = os.stat(path).st_size
        except OSError as err:
            raise ValueError(f"{path} cannot be read ({err.strerror}; a broken link?): remove it") from None
        if size == 0:
            raise ValueError(f"{path} is empty (0 bytes): remove it, or copy the image again")
        unique.append((path, label))
    probe([path for path, _ in unique], str(folder))
    return unique


def image_paths(folder: Path) -> list[Path]:
    """The images under `folder` that srblock reads (not hidden, through links, sorted), or a
    one-line error for those in a format it does not read: never fewer images without a word."""
    files = _walk(folder)
    unread = sorted(p for p in files if p.suffix.lower() in UNREAD_IMAGES)
    if unread:
        others = f" and {len(unread) - 1} other images are" if len(unread) > 1 else " is an image"
        raise ValueError(
            f"{unread[0]}{others} in a format srblock does not read "
            f"({', '.join(sorted({p.suffix.lower() for p in unread}))}): convert to PNG or JPEG, or remove"
        )
    return sorted(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def probe(paths: Sequence[str], where: str, threads: int = 8) -> None:
    """Opens every file's header (in threads: the time is the disk's), so that a file that is not
    an image stops the run before it trains, naming the file and how many more there are, rather
    than after an epoch (or, in test/, after the whole run)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        problems = [(p, why) for p, why in zip(paths, pool.map(_problem, paths), strict=True) if why]
    if problems:
        path, (why, fix) = problems[0]
        more = f" (and {len(problems) - 1} more files in {where})" if len(problems) > 1 else ""
        raise UnreadableImage(f"{path} {why}{more}: {fix}")
