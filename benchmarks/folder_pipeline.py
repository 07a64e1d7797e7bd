"""Images/s of the folder pipeline (`srblock train folder`) on the CPU, beside the ImageNet
pipeline on the same JPEGs: both decode in DataLoader workers and augment per image.

    python benchmarks/folder_pipeline.py                      # synthetic JPEGs + Fashion-MNIST PNGs
    python benchmarks/folder_pipeline.py --workers 2 4 --images 1024

Rows: the ImageNet pipeline (load_imagenet, RandomResizedCrop 224 + flip); the folder pipeline on
the same 500x375 JPEGs (load_folder, augment rrc at 224); and on small PNGs in every mode (real
Fashion-MNIST pictures from /usr/share/datasets/fashion-mnist, augment padcrop at 32, grey and RGB).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from imagenet_pipeline import images_per_second, write_jpegs  # noqa: E402

from srblock.data import make_file_loader  # noqa: E402
from srblock.data.folder import load_folder  # noqa: E402
from srblock.data.imagenet import imagenet_transform, load_imagenet  # noqa: E402
from srblock.render import render  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402


def rate(files, transform, channels: int, batch: int, workers: int) -> float:
    data = files.with_transform(transform, channels=channels)
    loader = make_file_loader(data, batch_size=batch, train=True, seed=0, num_workers=workers)
    return images_per_second(loader)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=512, help="JPEGs (and PNGs) per pipeline")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[2])
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = write_jpegs(Path(tmp) / "jpegs", args.images)
        imagenet, _ = load_imagenet(jpegs)
        folder, _, _ = load_folder(jpegs)
        per_class = max(1, args.images // 3)
        pngs, _, _ = load_folder(write_image_folder(Path(tmp) / "pngs", per_class=(per_class, 1, 1)))
        for workers in args.workers:
            rows += [
                {
                    "pipeline": "ImageNet (load_imagenet), RandomResizedCrop 224 + flip",
                    "files": "500x375 JPEG",
                    "workers": workers,
                    "images_per_s": rate(imagenet, imagenet_transform(True, 224), 3, args.batch, workers),
                },
                {
                    "pipeline": "folder (load_folder), augment rrc, 224",
                    "files": "500x375 JPEG",
                    "workers": workers,
                    "images_per_s": rate(folder, imagenet_transform(True, 224), 3, args.batch, workers),
                },
            ]
            for channels in (1, 3):
                mean, std = (0.5,) * channels, (0.25,) * channels
                transform = imagenet_transform(True, 32, mean, std, "padcrop")
                rows.append(
                    {
                        "pipeline": f"folder, augment padcrop, 32, in_chans {channels}",
                        "files": "28x28 / 40x30 PNG (grey, RGB, RGBA, palette)",
                        "workers": workers,
                        "images_per_s": rate(pngs, transform, channels, args.batch, workers),
                    }
                )
    print(
        f"{args.images} images per pipeline, batch {args.batch}, CPU ({platform.machine()}), "
        f"torch {torch.__version__}"
    )
    print(render(rows, ["pipeline", "files", "workers", "images_per_s"]))


if __name__ == "__main__":
    main()
