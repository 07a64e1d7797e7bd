"""Images/s of the ImageNet training input pipeline: JPEG decoding + RandomResizedCrop + flip +
normalisation, in DataLoader workers on the CPU, against decoding whole batches on the GPU
(torchvision.io.decode_jpeg on cuda, `gpu_decode: true` in the recipe). Without a GPU the batch
path runs on the CPU in the main process, which shows what the GPU path spares the workers.

    python benchmarks/imagenet_pipeline.py                         # synthetic JPEGs, CPU here
    python benchmarks/imagenet_pipeline.py --data /data/imagenet --workers 4 8 16 --device cuda

Without --data it writes --images synthetic JPEGs of ImageNet's typical size (500x375, quality
90, smooth content so their file size is realistic, ~40-80 kB) into a temporary ImageFolder
tree. Every configuration reads the same images once, after one warm-up pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from srblock.data import make_file_loader
from srblock.data.imagenet import collate_encoded, decode_batch, imagenet_transform, load_imagenet
from srblock.render import render


def write_jpegs(root: Path, count: int, size: tuple[int, int] = (375, 500)) -> Path:
    """`count` JPEGs in 10 class folders under root/train (and one per class under root/val)."""
    from torchvision.io import write_jpeg

    generator = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    for split, n in (("train", count), ("val", 10)):
        for i in range(n):
            folder = root / split / f"n{i % 10:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            phase = torch.rand(3, 1, 1, generator=generator) * 6.28
            freq = 2 + 10 * torch.rand(3, 1, 1, generator=generator)
            image = (
                127
                + 100 * torch.sin(freq * (x + y) + phase)
                + 20 * torch.randn(3, *size, generator=generator)
            )
            write_jpeg(image.clamp(0, 255).to(torch.uint8), str(folder / f"{i}.JPEG"), quality=90)
    return root


def images_per_second(loader, decode=None, device: torch.device | None = None) -> float:
    """One warm-up pass (starts persistent workers, fills caches), then one timed pass."""

    def one_pass() -> int:
        seen = 0
        for images, _ in loader:
            if decode is not None:
                images = decode_batch(images, decode, device)
            if device is not None and device.type == "cuda":
                images = images.to(device, non_blocking=True)
                torch.cuda.synchronize(device)
            seen += len(images)
        return seen

    one_pass()
    start = time.perf_counter()
    seen = one_pass()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", help="an ImageNet folder (train/ with class folders); default: synthetic JPEGs"
    )
    parser.add_argument("--images", type=int, default=512, help="synthetic images, or the first N of --data")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else write_jpegs(Path(tmp), args.images)
        train, _ = load_imagenet(root)
        train = train.subset(
            torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.images]
        )
        transform = imagenet_transform(True, 224)
        kb = sum(Path(p).stat().st_size for p, _ in train.samples) / len(train) / 1024
        rows = []
        for workers in args.workers:
            loader = make_file_loader(
                train.with_transform(transform),
                batch_size=args.batch,
                train=True,
                seed=0,
                num_workers=workers,
            )
            rows.append(
                {
                    "pipeline": "decode + augment in DataLoader workers (CPU)",
                    "workers": workers,
                    "images_per_s": images_per_second(loader, device=device),
                }
            )
            loader = make_file_loader(
                train.with_transform(None, encoded=True),
                batch_size=args.batch,
                train=True,
                seed=0,
                num_workers=workers,
                collate_fn=collate_encoded,
            )
            rows.append(
                {
                    "pipeline": f"workers read bytes; batch decode + augment on {device.type}",
                    "workers": workers,
                    "images_per_s": images_per_second(loader, transform, device),
                }
            )
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})"
    print(
        f"{len(train)} JPEGs of {kb:.0f} kB on average, batch {args.batch}, {where}, "
        f"{torch.get_num_threads()} torch threads in the main process, torch {torch.__version__}"
    )
    print(render(rows, ["pipeline", "workers", "images_per_s"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
