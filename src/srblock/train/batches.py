"""A classification split's batches on the run's device, whatever the data: the fast path or a
DataLoader for tensors in memory, or DataLoader workers reading image files (optionally decoded
on the GPU). Every epoch's order and augmentation depend on (seed, epoch) only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from lightning.fabric import Fabric
from torch.utils.data import Dataset

from ..config import TrainConfig
from ..data import DeviceLoader, EpochSampler, ImageSet, make_dataloader, make_file_loader
from ..data.imagenet import ImageFiles, collate_encoded, decode_batch
from ..data.images import UnreadableImage
from ..data.sampler import epoch_seed, item_seed


class ClassifyBatches:
    """(images, labels) batches of one split, on the fabric's device, `epoch(k)` at a time."""

    def __init__(
        self, fabric: Fabric, cfg: TrainConfig, data: ImageSet | ImageFiles | Dataset, mean, std, train: bool
    ) -> None:
        batch = cfg.batch_size if train else cfg.eval_batch_size
        self.generator, self.device, self.decode, self.seed = None, fabric.device, None, cfg.seed
        if not isinstance(data, ImageSet):  # files (or a Dataset from Python: srblock.fit), read by workers
            encoded = isinstance(data, ImageFiles) and cfg.gpu_decode
            if isinstance(data, ImageFiles):  # a Python Dataset brings its own transforms
                transform = cfg.file_transform(train)
                if encoded:
                    self.decode, data = transform, data.with_transform(None, encoded=True)
                else:
                    data = data.with_transform(transform, channels=cfg.in_chans)
            self.loader = make_file_loader(
                data,
                batch_size=batch,
                train=train,
                seed=cfg.seed,
                rank=fabric.global_rank,
                world_size=fabric.world_size,
                num_workers=cfg.num_workers,
                collate_fn=collate_encoded if encoded else None,
            )
        else:  # tensors in memory: the same batches, augmentation and seeds either way
            tensors = dict(
                batch_size=batch,
                mean=mean,
                std=std,
                train=train,
                seed=cfg.seed,
                flip=cfg.flip,
                crop_padding=cfg.crop_padding,
            )
            if cfg.loader == "fast":
                self.loader = DeviceLoader(
                    data.images,
                    data.labels,
                    rank=fabric.global_rank,
                    world_size=fabric.world_size,
                    channels_last=cfg.channels_last,
                    device=fabric.device,
                    **tensors,
                )
            else:
                loader = make_dataloader(data.images, data.labels, num_workers=cfg.num_workers, **tensors)
                self.generator = loader.generator
                self.loader = fabric.setup_dataloaders(loader, use_distributed_sampler=fabric.world_size > 1)
        # the fast path makes channels_last batches itself
        self.channels_last = cfg.channels_last and not isinstance(self.loader, DeviceLoader)
        # CUDA graphs exist in a compiled model on a CUDA device only (marking a step imports Inductor: 1 s)
        self.mark_steps = self.device.type == "cuda" and cfg.compile != "false"

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`: order and augmentation depend on (seed, epoch) only."""
        if isinstance(self.loader, DeviceLoader):
            self.loader.set_epoch(epoch)
        elif isinstance(self.loader.sampler, EpochSampler):
            self.loader.sampler.set_epoch(epoch)
        else:
            self.generator.manual_seed(epoch_seed(self.seed, epoch))
            if hasattr(self.loader.sampler, "set_epoch"):
                self.loader.sampler.set_epoch(epoch)
        for step, (images, labels) in enumerate(_named_errors(self.loader)):
            if self.decode is not None:  # JPEG bytes: decode and augment the batch on the device
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(item_seed(self.seed, epoch, step))
                    images = decode_batch(images, self.decode, self.device)
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            if self.mark_steps:  # each batch a step: CUDA graphs may reuse the last step's outputs
                torch.compiler.cudagraph_mark_step_begin()
            yield images, labels

    def __len__(self) -> int:
        return len(self.loader)


def _named_errors(loader: Iterable) -> Iterator:
    """A loader's batches; an image a worker could not decode ends the run with that worker's one
    line (naming the file), not the worker's traceback."""
    try:
        yield from loader
    except UnreadableImage as err:
        raise UnreadableImage(
            str(err).strip().splitlines()[-1].removeprefix("srblock.data.images.UnreadableImage: ")
        ) from None
