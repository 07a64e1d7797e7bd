"""The segmentation training loop (Cityscapes, the seg demo) on Lightning Fabric, read top to bottom.

Counted in iterations, as the paper's Cityscapes recipe: poly lr, an evaluation every
`eval_interval`, last.ckpt every `save_interval` (a killed run resumes at the very next batch,
with the augmentation it would have had), cross-entropy ignoring the ignore label plus the
auxiliary head's loss times `aux_weight`. The tested checkpoint is the one best on a validation
split cut from the training set when `val_fraction` > 0, else the last one; the test is whole-image
and multi-scale + flip, written as mIoU, mAcc and a per-class IoU table in the run folder.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from lightning.fabric.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MeanMetric
from tqdm.auto import tqdm

from ..data import make_file_loader
from ..data.seg_transforms import SegEvalTransform, SegTrainTransform
from ..render import render
from ..seg_eval import SegmentationMetric, segment
from .checkpoint import load_checkpoint, save_atomic, training_state
from .config import TrainConfig
from .loop import (
    build_model,
    claim_folder,
    device_name,
    load_splits,
    make_optimizer,
    prepare_model,
    restore,
    size_fields,
    train_input_size,
    versions,
)
from .runs import SEG_METRIC_COLUMNS, MetricsLog, write_result, write_text_atomic
from .schedule import poly_factor


def seg_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, aux_weight: float, ignore_index: int) -> torch.Tensor:
    """Cross-entropy of the main head plus `aux_weight` times the auxiliary head's, ignored pixels left out."""
    loss = F.cross_entropy(out["out"].float(), labels, ignore_index=ignore_index)
    if "aux" in out and aux_weight:
        loss = loss + aux_weight * F.cross_entropy(out["aux"].float(), labels, ignore_index=ignore_index)
    return loss


@torch.no_grad()
def evaluate_segmentation(fabric: Fabric, model: nn.Module, loader, num_classes: int, ignore_index: int,
                          scales=(1.0,), flip: bool = False) -> dict[str, Any]:
    """mIoU, mAcc (and per class) over a split, summed over every process.

    Runs the unwrapped model under the fabric's autocast: processes may hold different numbers
    of images, and an unwrapped forward has no collective to wait on.
    """
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index, fabric.device)
    loader.sampler.set_epoch(0)
    for images, labels in loader:
        images, labels = images.to(fabric.device), labels.to(fabric.device)
        with fabric.autocast():
            probs = segment(model, images, scales, flip)
        metric.update(probs, labels)
    return metric.compute()


def class_table(classes: tuple[str, ...], scores: dict[str, dict[str, Any]]) -> str:
    """Markdown: per-class IoU and accuracy of each evaluation (whole image, multi-scale)."""
    rows = []
    for i, name in enumerate(classes):
        row = {"class": name}
        for key, s in scores.items():
            row[f"iou_{key}"], row[f"acc_{key}"] = s["class_iou"][i], s["class_acc"][i]
        rows.append(row)
    rows.append({"class": "mean", **{f"{m}_{k}": s[f"m{m}"] for k, s in scores.items() for m in ("iou", "acc")}})
    return render(rows, ["class"] + [f"{m}_{k}" for k in scores for m in ("iou", "acc")])


def train_seg_run(
    fabric: Fabric,
    cfg: TrainConfig,
    folder: Path,
    *,
    data_root: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains one segmentation configuration with one seed in `folder`; returns (and writes) result.json."""
    started = time.time()
    rank0 = fabric.global_rank == 0
    folder = Path(folder)
    last_ckpt, best_ckpt = folder / "last.ckpt", folder / "best.ckpt"
    claim_folder(fabric, cfg, folder, resume)

    # data: files (or canvases) read by workers; crops sized cfg.crop_size
    info, train_set, val_set, test_set = load_splits(cfg, data_root)
    crop = cfg.crop_hw()
    augment = SegTrainTransform(crop, cfg.scale_range, info.mean, info.std, flip=cfg.flip, photometric=cfg.photometric)
    whole = SegEvalTransform(info.mean, info.std)
    shard = dict(seed=cfg.seed, rank=fabric.global_rank, world_size=fabric.world_size, num_workers=cfg.num_workers)
    train_loader = make_file_loader(train_set.with_transform(augment), batch_size=cfg.batch_size, train=True, **shard)
    if len(train_loader) == 0:
        raise ValueError(f"{len(train_set)} training images make no batch of {cfg.batch_size}: lower batch_size")
    eval_set = val_set if len(val_set) else test_set
    eval_loader = make_file_loader(eval_set.with_transform(whole), batch_size=cfg.eval_batch_size, train=False, **shard)
    test_loader = eval_loader if eval_set is test_set else make_file_loader(
        test_set.with_transform(whole), batch_size=cfg.eval_batch_size, train=False, **shard)

    # model, optimiser, poly schedule: the seed decides the init; the SR memory has the crop's feature size
    fabric.seed_everything(cfg.seed, verbose=False)
    model = prepare_model(fabric, cfg, build_model(cfg, info.num_classes, train_input_size(cfg, info)))
    optimizer = make_optimizer(fabric, cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        poly_factor, total=cfg.iterations, power=cfg.poly_power, min_factor=cfg.min_lr / cfg.lr))

    start, best_val, best_iteration = 0, float("-inf"), -1
    if last_ckpt.exists():
        state = restore(last_ckpt, cfg, model, optimizer, scheduler)
        start, best_val, best_iteration = state["iteration"], state["best_val"], state["best_iteration"]
    net, optimizer = fabric.setup(torch.compile(model) if cfg.compile else model, optimizer)

    def checkpoint(path: Path, iteration: int) -> None:
        if rank0:
            save_atomic(path, training_state(cfg.identity(), model, optimizer, scheduler,
                                             iteration=iteration, best_val=best_val, best_iteration=best_iteration))
        fabric.barrier()

    metrics = MetricsLog(folder / "metrics.csv", start + 1, SEG_METRIC_COLUMNS) if rank0 else None
    logger = TensorBoardLogger(folder, name="tensorboard", version="") if rank0 else None
    progress = tqdm(total=cfg.iterations, initial=start, disable=quiet or not rank0, unit="it", dynamic_ncols=True, leave=False)
    progress.set_description(f"{folder.parent.name}/{folder.name}")
    loss_metric = MeanMetric().to(fabric.device)
    steps_per_epoch, iteration, window_start = len(train_loader), start, time.time()
    train_sampler = train_loader.sampler

    while iteration < cfg.iterations:
        epoch, offset = divmod(iteration, steps_per_epoch)
        train_sampler.set_epoch(epoch, offset * cfg.batch_size)  # a resumed run continues with the next batch
        net.train()
        for images, labels in train_loader:
            images = images.to(fabric.device, non_blocking=True)
            labels = labels.to(fabric.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            lr = optimizer.param_groups[0]["lr"]
            loss = seg_loss(net(images), labels, cfg.aux_weight, info.ignore_index)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            scheduler.step()
            loss_metric.update(loss.detach())
            iteration += 1
            progress.update(1)
            if not progress.disable and iteration % 10 == 0:
                progress.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", refresh=False)

            if iteration % cfg.eval_interval == 0 or iteration == cfg.iterations:
                scores = evaluate_segmentation(fabric, model, eval_loader, info.num_classes, info.ignore_index)
                if not len(val_set) or scores["miou"] > best_val:
                    best_val, best_iteration = scores["miou"], iteration
                    checkpoint(best_ckpt, iteration)
                row = dict(zip(SEG_METRIC_COLUMNS, (iteration, lr, loss_metric.compute().item(), scores["miou"],
                                                    scores["macc"], time.time() - window_start)))
                loss_metric.reset()
                window_start = time.time()
                if rank0:
                    metrics.append(row)
                    logger.log_metrics({k: v for k, v in row.items() if k != "iteration"}, step=iteration)
                    progress.set_postfix(loss=f"{row['train_loss']:.3f}", miou=f"{scores['miou']:.1f}%")
                net.train()
                checkpoint(last_ckpt, iteration)
            elif iteration % cfg.save_interval == 0:
                checkpoint(last_ckpt, iteration)
            if iteration >= cfg.iterations:
                break
    progress.close()
    if logger is not None:
        logger.finalize("success")

    # best on the validation split, or the last; tested whole-image and multi-scale + flip
    model.load_state_dict(load_checkpoint(best_ckpt, cfg.model)["model"])
    scores = {
        "whole": evaluate_segmentation(fabric, model, test_loader, info.num_classes, info.ignore_index),
        "ms": evaluate_segmentation(fabric, model, test_loader, info.num_classes, info.ignore_index,
                                    scales=cfg.ms_scales, flip=cfg.ms_flip),
    }
    result = {
        "test_miou": scores["whole"]["miou"], "test_macc": scores["whole"]["macc"],
        "test_miou_ms": scores["ms"]["miou"], "test_macc_ms": scores["ms"]["macc"],
        "test_pixel_acc": scores["whole"]["pixel_acc"],
        "best_val_miou": best_val if len(val_set) else None, "best_iteration": best_iteration,
        "iterations": cfg.iterations, "seed": cfg.seed, **size_fields(cfg, model, info),
        "class_iou": dict(zip(train_set.classes, scores["whole"]["class_iou"])),
        "class_iou_ms": dict(zip(train_set.classes, scores["ms"]["class_iou"])),
        "wall_time_s": time.time() - started, "device": device_name(fabric), "world_size": fabric.world_size,
        "config": cfg.identity(), "versions": versions(), **(extra or {}),
    }
    if rank0:
        write_text_atomic(folder / "class_iou.md", class_table(train_set.classes, scores) + "\n")
        write_result(folder, result)
    fabric.barrier()
    return result
