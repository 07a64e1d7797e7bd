"""The classification training loop on Lightning Fabric: one run, read top to bottom.

CPU, one GPU or many (DDP, many nodes) through Fabric; the checkpoint best on validation is the
one tested; a run killed at any moment resumes from its last epoch and ends with exactly the
weights an uninterrupted run would have (on the CPU, where kernels are deterministic).
"""

from __future__ import annotations

import functools
import platform
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from lightning.fabric.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from tqdm.auto import tqdm

from ..data import (
    DATASETS,
    DatasetInfo,
    DeviceLoader,
    EpochSampler,
    ImageSet,
    load_dataset,
    make_dataloader,
    make_file_loader,
    split_train_val,
)
from ..data.imagenet import ImageFiles, collate_encoded, decode_batch, imagenet_transform
from ..data.sampler import item_seed
from ..insert import sr_blocks
from ..params import overhead, plain_params
from ..registry import create_model
from .checkpoint import load_checkpoint, save_atomic, set_rng_state, training_state
from .config import TrainConfig
from .runs import METRIC_COLUMNS, MetricsLog, claim_run_dir, read_config, write_result
from .schedule import multistep_factor


def build_model(cfg: TrainConfig, num_classes: int, input_size: tuple[int, int, int]) -> nn.Module:
    """The run's model, from the zoo, with its SR block sized for the images it is trained on."""
    return create_model(
        cfg.model,
        num_classes=num_classes,
        in_chans=input_size[0],
        attn=cfg.attn,
        reg=cfg.reg,
        reg_rate=cfg.reg_rate,
        sr_stage=cfg.sr_stage,
        sr_blocks=cfg.sr_blocks,
        sr_hidden=cfg.sr_hidden,
        sr_squeeze=cfg.sr_squeeze,
        input_size=input_size,
    )


def train_input_size(cfg: TrainConfig, info: DatasetInfo) -> tuple[int, int, int]:
    """(C, H, W) of the images a run trains on, which sizes its SR memory: the data set's own,
    the ImageNet crop (`image_size`), or the segmentation crop (`crop_size`)."""
    if info.task == "segment":
        return (info.input_size[0], *cfg.crop_hw())
    return info.input_size if info.in_memory else (info.input_size[0], cfg.image_size, cfg.image_size)


class TrainedModel(NamedTuple):
    model: nn.Module
    cfg: TrainConfig
    input_size: tuple[int, int, int]


def trained_model(folder: str | Path) -> TrainedModel:
    """A run folder's model with its tested checkpoint (best.ckpt) loaded, in eval mode, with the
    run's config and the input size it was trained at; no data needed."""
    folder = Path(folder)
    if not (folder / "config.yaml").is_file():
        raise FileNotFoundError(f"{folder} is not a run folder (no config.yaml): give OUT/<recipe>/<configuration>/seed<k>")
    if not (folder / "best.ckpt").is_file():
        raise FileNotFoundError(f"{folder} has no best.ckpt yet: finish the run first (srblock train ... --resume)")
    cfg = read_config(folder)
    if cfg.dataset not in DATASETS:
        raise ValueError(f"{folder / 'config.yaml'}: unknown dataset {cfg.dataset!r}; known: {', '.join(DATASETS)}")
    info = DATASETS[cfg.dataset]
    input_size = train_input_size(cfg, info)
    model = build_model(cfg, info.num_classes, input_size)
    model.load_state_dict(load_checkpoint(folder / "best.ckpt", cfg.model)["model"])
    return TrainedModel(model.eval(), cfg, input_size)


def prepare_model(fabric: Fabric, cfg: TrainConfig, model: nn.Module) -> nn.Module:
    """The model as training wants it: no weight recording, SyncBN across GPUs, on the device."""
    for _, block in sr_blocks(model):
        block.record_weights = False  # analyses turn it on; training needs no copy per step
    if fabric.world_size > 1 and fabric.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # on the device before the optimiser exists, so a resumed optimiser state lands there too
    return model.to(fabric.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)


def load_splits(cfg: TrainConfig, data_root: str | Path | None) -> tuple[DatasetInfo, Any, Any, Any]:
    """(info, train, validation, test) as a run sees them: cut to limit_train / limit_test, the
    training set split by the seed (an empty validation split when val_fraction is 0)."""
    info, train_set, test_set = load_dataset(cfg.dataset, data_root)
    train_set, val_set = split_train_val(train_set.subset(slice(0, cfg.limit_train)), cfg.val_fraction, cfg.seed)
    return info, train_set, val_set, test_set.subset(slice(0, cfg.limit_test))


def size_fields(cfg: TrainConfig, model: nn.Module, info: DatasetInfo) -> dict[str, Any]:
    """result.json's parameter counts: the model's, its plain model's, its SR blocks', and OH."""
    return overhead(model, plain_params(cfg.model, info.num_classes, info.input_size[0]))


def claim_folder(fabric: Fabric, cfg: TrainConfig, folder: Path, resume: bool) -> None:
    """Makes `folder` this run's (config.yaml), or refuses a folder that holds another run."""
    if (folder / "last.ckpt").exists() and not resume:
        raise ValueError(f"{folder} holds an unfinished run: add --resume to continue it, or choose another --out")
    fabric.barrier()
    if fabric.global_rank == 0:
        claim_run_dir(folder, cfg)
    fabric.barrier()


def restore(path: Path, cfg: TrainConfig, model: nn.Module, optimizer, scheduler) -> dict[str, Any]:
    """Loads a last.ckpt into model, optimizer, scheduler and the random generators; returns it."""
    state = load_checkpoint(path, cfg.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise ValueError(
            f"checkpoint {path} does not fit this run's {cfg.model}: it is from another "
            "configuration; choose another --out, or delete it"
        ) from None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state


def make_optimizer(fabric: Fabric, cfg: TrainConfig, model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay, fused=fabric.device.type == "cuda" or None,
    )


class _Loader:
    """One split's batches on the fabric's device: the fast path or a DataLoader for tensors in
    memory, or DataLoader workers reading files (ImageNet), optionally decoded on the GPU."""

    def __init__(self, fabric: Fabric, cfg: TrainConfig, data: ImageSet | ImageFiles, mean, std, train: bool) -> None:
        batch = cfg.batch_size if train else cfg.eval_batch_size
        aug = dict(crop_padding=cfg.crop_padding, flip=cfg.flip, seed=cfg.seed)
        self.generator, self.device, self.decode, self.seed = None, fabric.device, None, cfg.seed
        if isinstance(data, ImageFiles):
            transform = imagenet_transform(train, cfg.image_size, mean, std)
            if cfg.gpu_decode:
                self.decode, data = transform, data.with_transform(None, encoded=True)
            else:
                data = data.with_transform(transform)
            self.loader = make_file_loader(
                data, batch_size=batch, train=train, seed=cfg.seed, rank=fabric.global_rank,
                world_size=fabric.world_size, num_workers=cfg.num_workers,
                collate_fn=collate_encoded if cfg.gpu_decode else None,
            )
        elif cfg.loader == "fast":
            self.loader = DeviceLoader(
                data.images, data.labels, batch_size=batch, mean=mean, std=std, train=train,
                rank=fabric.global_rank, world_size=fabric.world_size,
                channels_last=cfg.channels_last, device=fabric.device, **aug,
            )
        else:
            loader = make_dataloader(
                data.images, data.labels, batch_size=batch, mean=mean, std=std, train=train,
                num_workers=cfg.num_workers, **aug,
            )
            self.generator = loader.generator
            self.loader = fabric.setup_dataloaders(loader, use_distributed_sampler=fabric.world_size > 1)
        # the fast path makes channels_last batches itself
        self.channels_last = cfg.channels_last and not isinstance(self.loader, DeviceLoader)

    def epoch(self, epoch: int):
        """The batches of `epoch`: order and augmentation depend on (seed, epoch) only."""
        if isinstance(self.loader, DeviceLoader):
            self.loader.set_epoch(epoch)
        elif isinstance(self.loader.sampler, EpochSampler):
            self.loader.sampler.set_epoch(epoch)
        else:
            self.generator.manual_seed(self.seed * 100_003 + epoch)
            if hasattr(self.loader.sampler, "set_epoch"):
                self.loader.sampler.set_epoch(epoch)
        for step, (images, labels) in enumerate(self.loader):
            if self.decode is not None:  # JPEG bytes: decode and augment the batch on the device
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(item_seed(self.seed, epoch, step))
                    images = decode_batch(images, self.decode, self.device)
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels

    def __len__(self) -> int:
        return len(self.loader)


@torch.no_grad()
def evaluate(net: nn.Module, loader: _Loader, num_classes: int, device: torch.device) -> tuple[float, float, float]:
    """(mean loss, top-1 and top-5 accuracy in %) over a split, summed over every process."""
    net.eval()
    loss_metric = MeanMetric().to(device)
    acc_metric = MulticlassAccuracy(num_classes=num_classes, average="micro").to(device)
    top5_metric = MulticlassAccuracy(num_classes=num_classes, average="micro", top_k=min(5, num_classes)).to(device)
    for images, labels in loader.epoch(0):
        logits = net(images)
        loss_metric.update(F.cross_entropy(logits.float(), labels), weight=len(labels))
        acc_metric.update(logits, labels)
        top5_metric.update(logits, labels)
    return loss_metric.compute().item(), 100.0 * acc_metric.compute().item(), 100.0 * top5_metric.compute().item()


def versions() -> dict[str, str]:
    import lightning
    import timm
    import torchvision

    from .. import __version__

    return {
        "srblock": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "timm": timm.__version__, "lightning": lightning.__version__, "python": platform.python_version(),
    }


def device_name(fabric: Fabric) -> str:
    if fabric.device.type == "cuda":
        return torch.cuda.get_device_name(fabric.device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def train_run(
    fabric: Fabric,
    cfg: TrainConfig,
    folder: Path,
    *,
    data_root: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains one configuration with one seed in `folder`; returns (and writes) result.json."""
    started = time.time()
    rank0 = fabric.global_rank == 0
    folder = Path(folder)
    last_ckpt, best_ckpt = folder / "last.ckpt", folder / "best.ckpt"
    claim_folder(fabric, cfg, folder, resume)

    # data: uint8 tensors (or image files); the 90/10 train/validation split depends on the seed
    info, train_set, val_set, test_set = load_splits(cfg, data_root)
    train_loader = _Loader(fabric, cfg, train_set, info.mean, info.std, train=True)
    val_loader = _Loader(fabric, cfg, val_set, info.mean, info.std, train=False) if len(val_set) else None
    test_loader = _Loader(fabric, cfg, test_set, info.mean, info.std, train=False)

    # model, optimiser, schedule: the seed decides the init
    fabric.seed_everything(cfg.seed, verbose=False)
    model = prepare_model(fabric, cfg, build_model(cfg, info.num_classes, train_input_size(cfg, info)))
    optimizer = make_optimizer(fabric, cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(multistep_factor, milestones=cfg.milestones, gamma=cfg.gamma)
    )

    start_epoch, best_val, best_epoch = 0, float("-inf"), -1
    if last_ckpt.exists():
        state = restore(last_ckpt, cfg, model, optimizer, scheduler)
        start_epoch, best_val, best_epoch = state["epoch"], state["best_val"], state["best_epoch"]
    net, optimizer = fabric.setup(torch.compile(model) if cfg.compile else model, optimizer)

    def checkpoint(path: Path, epoch: int) -> None:
        if rank0:
            save_atomic(path, training_state(cfg.identity(), model, optimizer, scheduler,
                                             epoch=epoch, best_val=best_val, best_epoch=best_epoch))
        fabric.barrier()

    metrics = MetricsLog(folder / "metrics.csv", start_epoch) if rank0 else None
    logger = TensorBoardLogger(folder, name="tensorboard", version="") if rank0 else None
    steps = len(train_loader)
    progress = tqdm(
        total=cfg.epochs * steps, initial=start_epoch * steps, disable=quiet or not rank0,
        unit="step", dynamic_ncols=True, leave=False,
    )
    loss_metric = MeanMetric().to(fabric.device)
    acc_metric = MulticlassAccuracy(num_classes=info.num_classes, average="micro").to(fabric.device)

    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.time()
        lr = optimizer.param_groups[0]["lr"]
        progress.set_description(f"{folder.parent.name}/{folder.name} epoch {epoch + 1}/{cfg.epochs}")
        net.train()
        correct, seen = torch.zeros((), device=fabric.device), 0  # this process's, for the bar only
        for step, (images, labels) in enumerate(train_loader.epoch(epoch)):
            logits = net(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            loss_metric.update(loss.detach(), weight=len(labels))
            acc_metric.update(logits.detach(), labels)
            progress.update(1)
            if not progress.disable:
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(labels)
                if step % 25 == 0:
                    progress.set_postfix(loss=f"{loss.item():.3f}", acc=f"{100 * correct.item() / seen:.1f}%", refresh=False)
        train_loss, train_acc = loss_metric.compute().item(), 100.0 * acc_metric.compute().item()
        loss_metric.reset()
        acc_metric.reset()
        scheduler.step()

        # without a validation split (ImageNet: its val set is the test set) the last epoch is tested
        val_loss, val_acc, _ = evaluate(net, val_loader, info.num_classes, fabric.device) if val_loader else (None, None, None)
        if val_acc is None or val_acc > best_val:
            best_val, best_epoch = (val_acc if val_acc is not None else float("nan")), epoch
            checkpoint(best_ckpt, epoch + 1)
        checkpoint(last_ckpt, epoch + 1)
        row = dict(zip(METRIC_COLUMNS, (epoch, lr, train_loss, train_acc, val_loss, val_acc, time.time() - epoch_start)))
        if rank0:
            metrics.append(row)
            logger.log_metrics({k: v for k, v in row.items() if k != "epoch" and v is not None}, step=epoch)
            progress.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.1f}%", val=f"{val_acc or float('nan'):.1f}%")
    progress.close()
    if logger is not None:
        logger.finalize("success")

    # the checkpoint best on validation is the one tested
    model.load_state_dict(load_checkpoint(best_ckpt, cfg.model)["model"])
    test_loss, test_acc, test_top5 = evaluate(net, test_loader, info.num_classes, fabric.device)
    result = {
        "test_acc": test_acc, "test_top5": test_top5, "test_loss": test_loss,
        "best_val_acc": best_val if val_loader else None, "best_epoch": best_epoch,
        "epochs": cfg.epochs, "seed": cfg.seed, **size_fields(cfg, model, info),
        "wall_time_s": time.time() - started, "device": device_name(fabric), "world_size": fabric.world_size,
        "config": cfg.identity(), "versions": versions(), **(extra or {}),
    }
    if rank0:
        write_result(folder, result)
    fabric.barrier()
    return result
