"""Training throughput at CIFAR-100 shapes: the fast data path against the DataLoader path, and
images/s and epoch time of R18, R50 and VGG16 (with and without an SR block), on whatever device
is there. Synthetic uint8 data of CIFAR-100's shape: the numbers are speed, not accuracy.

    python benchmarks/train_throughput.py                        # CPU here, a few minutes
    python benchmarks/train_throughput.py --device cuda --compile --steps 200   # one GPU
    python benchmarks/train_throughput.py --json out.json

Epoch time is 45,000 training images (CIFAR-100's 90% split) divided by the measured training
images/s; "200 epochs" is that times 200 plus nothing for evaluation (which is ~5% more).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from srblock.data import DeviceLoader, make_dataloader
from srblock.factory import create_model
from srblock.render import render

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
TRAIN_IMAGES = 45_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_loader(
    kind: str, images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch: int, workers: int
):
    common = dict(batch_size=batch, mean=MEAN, std=STD, train=True, crop_padding=4, flip=True, seed=0)
    if kind == "fast":
        return DeviceLoader(images, labels, channels_last=True, device=device, **common)
    return make_dataloader(images, labels, num_workers=workers, **common)


def batches(loader, device: torch.device):
    """Endless batches on the device, as the training loop gets them."""
    epoch = 0
    while True:
        if isinstance(loader, DeviceLoader):
            loader.set_epoch(epoch)
        for x, y in loader:
            yield (
                x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                y.to(device, non_blocking=True),
            )
        epoch += 1


def loader_throughput(loader, device: torch.device, steps: int) -> float:
    """Images/s of the data path alone (no model)."""
    it = batches(loader, device)
    next(it)
    sync(device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        x, _ = next(it)
        n += len(x)
    sync(device)
    return n / (time.perf_counter() - start)


def train_throughput(
    model_name: str,
    sr: bool,
    loader,
    device: torch.device,
    steps: int,
    warmup: int,
    precision: str,
    compile_mode: str | None,
) -> float:
    """Images/s of full training steps (forward, backward, SGD step) on batches from `loader`."""
    model = create_model(model_name, num_classes=100, sr_stage=3 if sr else None, sr_blocks=2)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, fused=device.type == "cuda" or None
    )
    net = torch.compile(model, mode=compile_mode) if compile_mode else model
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    it = batches(loader, device)

    def step() -> int:
        x, y = next(it)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(x)

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    n = sum(step() for _ in range(steps))
    sync(device)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=["resnet18_cifar", "resnet50_cifar", "vgg16_bn_cifar"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="timed training steps per model")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--loader-steps", type=int, default=60)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--precision", default="auto", help="auto: bf16-mixed on cuda, 32-true on cpu")
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        metavar="MODE",
        help="torch.compile the models (a mode: default, reduce-overhead for CUDA graphs, max-autotune)",
    )
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    device = torch.device(args.device)
    precision = (
        args.precision if args.precision != "auto" else ("bf16-mixed" if device.type == "cuda" else "32-true")
    )
    torch.manual_seed(0)
    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 100, (50_000,))

    loader_rows = []
    for kind in ("fast", "dataloader"):
        loader = make_loader(kind, images, labels, device, args.batch, args.workers)
        loader_rows.append(
            {"data path": kind, "images_per_s": loader_throughput(loader, device, args.loader_steps)}
        )
    train_rows = []
    for name in args.models:
        for sr in (False, True):
            for kind in ("fast", "dataloader") if name == args.models[0] and not sr else ("fast",):
                loader = make_loader(kind, images, labels, device, args.batch, args.workers)
                ips = train_throughput(
                    name, sr, loader, device, args.steps, args.warmup, precision, args.compile
                )
                train_rows.append(
                    {
                        "model": name + (" + SR (3, 2)" if sr else ""),
                        "data path": kind,
                        "images_per_s": ips,
                        "epoch_s": TRAIN_IMAGES / ips,
                        "200_epochs_min": 200 * TRAIN_IMAGES / ips / 60,
                    }
                )
    machine = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "precision": precision,
        "compile": args.compile,
        "batch": args.batch,
    }
    print(machine)
    print(render(loader_rows, ["data path", "images_per_s"]))
    print()
    print(render(train_rows, ["model", "data path", "images_per_s", "epoch_s", "200_epochs_min"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "loaders": loader_rows, "training": train_rows}, f, indent=2)


if __name__ == "__main__":
    main()
