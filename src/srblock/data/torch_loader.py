"""The standard path: torch DataLoaders with torchvision transforms, for comparison and for file data sets."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .sampler import EpochSampler, SeededItems


def ignore_job_signals(worker_id: int) -> None:
    """A DataLoader worker's start: SLURM's signal before a time-out (SIGUSR2), sent to every
    process of the job, is the training process's to handle (submitit requeues it); its default
    would kill the worker and the run with it."""
    if hasattr(signal, "SIGUSR2"):
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class TensorImages(Dataset):
    """uint8 images and labels in memory, transformed one image at a time (in workers)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def make_dataloader(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    train: bool,
    crop_padding: int = 0,
    flip: bool = False,
    seed: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader whose shuffle order comes from `loader.generator`: reseed it every epoch.

    Workers are not persistent: each epoch's workers are seeded from that generator, so the
    augmentation of an epoch depends on (seed, epoch) only and a resumed run repeats it exactly.
    """
    steps: list[v2.Transform] = []
    if train and crop_padding:
        steps.append(v2.RandomCrop(images.shape[-2:], padding=crop_padding))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return DataLoader(
        TensorImages(images, labels, v2.Compose(steps)),
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_job_signals,
    )


def usable_workers(asked: int) -> int:
    """`asked` DataLoader workers, but no more than the cores this process may use: more only
    share the same cores (and torch warns, twice per run)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(asked, cores)


def make_file_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    collate_fn=None,
) -> DataLoader:
    """A DataLoader for a file data set (ImageNet, Cityscapes): workers, pinned memory, persistent
    workers, and (epoch, index) keys from an EpochSampler, so a run resumes mid-epoch exactly.

    Call `loader.sampler.set_epoch(epoch, start)` before each epoch; `start` counts this
    process's samples to skip. Every item is augmented from its own seed, so the number of workers
    (at most the cores: `usable_workers`) changes nothing but the speed.
    """
    num_workers = usable_workers(num_workers)
    sampler = EpochSampler(
        len(dataset), seed=seed, shuffle=train, rank=rank, world_size=world_size, drop_last=train
    )
    return DataLoader(
        SeededItems(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
        worker_init_fn=ignore_job_signals,
    )
