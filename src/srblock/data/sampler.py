"""Resumable, reproducible sampling, and the seeds every epoch's draws come from (`epoch_seed`).

For file data sets (ImageNet, Cityscapes, the segmentation demo) read by DataLoader workers,
`EpochSampler` yields `(epoch, index)` keys: this process's share of a seeded permutation, from
any batch on (a run resumed mid-epoch continues with the very next batch). `SeededItems` seeds
torch's generator from (seed, epoch, index) before transforming an item, so what augmentation
an image gets depends on neither the number of workers, nor their persistence, nor a resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """(epoch, index) keys of one epoch for one process: shuffled by (seed, epoch), sharded by rank.

    With `drop_last` (training) every process gets the same number of keys, the permutation's
    tail cut off; without it (evaluation) process r gets items r, r + world_size, ... exactly
    once, so nothing is counted twice. `set_epoch(epoch, start)` picks the epoch and skips the
    first `start` keys of this process.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty data set")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start = 0, 0

    def _per_rank(self) -> int:
        if self.drop_last:
            return self.size // self.world_size
        return len(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return max(0, self._per_rank() - self.start)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        mine = order[self.rank :: self.world_size][: self._per_rank()][self.start :]
        return iter([(self.epoch, int(i)) for i in mine])


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The generator seed for `epoch` of a run seeded `seed`: every epoch's order and augmentation
    come from here, so a resumed run redraws exactly what it would have drawn. `stream` tells
    apart the draws of one epoch (0: the order of the images, 1: their augmentation)."""
    return seed * 100_003 + epoch + 7_919 * stream


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The torch seed for augmenting item `index` (or batch `index`) in `epoch` of a run seeded `seed`."""
    return epoch_seed(seed, epoch, stream=1) * 10_000_019 + index


class SeededItems(Dataset):
    """A data set read by (epoch, index) keys; each item is made under its own seed (`item_seed`)."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index))
            return self.dataset[index]
