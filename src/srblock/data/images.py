"""What an image file is to srblock: the formats it reads, one decoder that every reader uses
(class folders, ImageNet, Cityscapes, `predict`), and a probe of a split's files before training.

Every image becomes uint8 C x H x W with the run's channels (1 or 3), whatever the file holds, by
rules stated once: an animation (GIF, WebP) gives its first frame; 16 bits give their top 8 (the
0-255 scale the models are normalised on); an alpha channel is dropped (as PIL's convert does);
colour becomes grey by luma, grey becomes colour by repeating it; a palette is expanded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2.functional import rgb_to_grayscale

# what torchvision.io.decode_image reads (PIL's longer list, e.g. .bmp and .tif, it does not)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
UNREAD_IMAGES = (".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".heic", ".avif")  # images it would drop
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
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableImage(f"{path} cannot be decoded as an image ({reason}){advice}") from None
    return to_channels(image, channels)


def read_image(path: str | os.PathLike, channels: int, advice: str = "") -> torch.Tensor:
    """An image file as uint8 C x H x W with `channels`, or a one-line UnreadableImage."""
    return decode(read_file(str(path)), channels, path, advice)


def _problem(path: str) -> tuple[str, str] | None:
    """Why a file is no image srblock reads, and what to do (from its header: no pixel is
    decoded), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            kind = image.format
    except UnidentifiedImageError:
        return "is not an image (text, or a format nothing here reads)", "remove or replace it"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})", "remove or replace it"
    if kind not in DECODED_FORMATS:
        return f"is a {kind} image under another name", "convert it to PNG or JPEG"
    return None


def checked_files(folder: Path, samples: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A split's image files but hidden ones, each once (a symbolic link looping back lists a file
    many times), and each an image srblock reads: an empty, dangling or undecodable file, or an image in a
    format that would be dropped, is a one-line error now rather than a traceback (or a smaller
    data set) later."""
    unread = sorted(p for p in folder.rglob("*") if p.suffix.lower() in UNREAD_IMAGES)
    if unread:
        raise ValueError(
            f"{unread[0]} and {len(unread) - 1} other images are in a format srblock does not read "
            f"({', '.join(sorted({p.suffix.lower() for p in unread}))}): convert them to PNG or JPEG, "
            "or remove them"
        )
    unique, seen = [], set()
    for path, label in samples:
        if any(part.startswith(".") for part in Path(path).relative_to(folder).parts):
            continue  # hidden: a notebook's checkpoints, macOS's ._ files
        real = os.path.realpath(path)
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
