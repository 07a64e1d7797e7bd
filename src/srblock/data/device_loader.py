"""The fast path: a whole data set as uint8 on the device, augmented a batch at a time there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from .sampler import epoch_seed


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pads each image by `padding` (zeros) and cuts it back at a random offset, all in one gather."""
    if padding == 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips a random half of the images left-right."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class DeviceLoader:
    """Batches of (normalised float images, labels) from uint8 tensors kept on the device.

    The order and the augmentation of an epoch come from (seed, epoch) alone, so a resumed run
    sees exactly the batches an uninterrupted one would. With several processes each takes
    every world_size-th image of the epoch's order.
    """

    def __init__(
        self,
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
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.train, self.crop_padding, self.flip = train, crop_padding, flip
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=generator, device=self.device)
        per_rank = n // self.world_size  # equal shares: every process takes as many steps
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        n = len(self._order()) if not self.train else len(self.labels) // self.world_size
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        generator = torch.Generator(device=self.device).manual_seed(
            epoch_seed(self.seed, self.epoch, stream=1)
        )
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = random_crop(images, self.crop_padding, generator)
                if self.flip:
                    images = random_flip(images, generator)
            images = (images.float() - self.mean) / self.std
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[index]
