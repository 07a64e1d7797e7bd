"""The segmentation loop (Cityscapes, the seg demo) on Lightning Fabric, read top to bottom.

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
from torch import nn
from torchmetrics import MeanMetric

from ..atomic_files import write_text_atomic
from ..config import SegmentConfig
from ..data import make_file_loader
from ..data.seg_transforms import SegEvalTransform, SegTrainTransform
from ..insert import sr_blocks, sr_bypassed
from ..memory import memory_statistics
from ..metrics_log import SEG_METRIC_COLUMNS
from ..run_folder import BEST_CKPT, CLASS_IOU_FILE, LAST_CKPT
from ..seg_eval import SegmentationMetric, class_table, segment
from .engine import start_run
from .progress import Progress
from .schedule import poly_factor

SEG_STATISTICS_IMAGES = 64  # whole evaluation images the memory statistics read (a forward each)


def seg_loss(
    out: dict[str, torch.Tensor], labels: torch.Tensor, aux_weight: float, ignore_index: int
) -> torch.Tensor:
    """Cross-entropy of the main head plus `aux_weight` times the auxiliary head's, without ignored pixels."""
    loss = F.cross_entropy(out["out"].float(), labels, ignore_index=ignore_index)
    if "aux" in out and aux_weight:
        loss = loss + aux_weight * F.cross_entropy(out["aux"].float(), labels, ignore_index=ignore_index)
    return loss


@torch.no_grad()
def evaluate_segmentation(
    fabric: Fabric,
    model: nn.Module,
    loader,
    num_classes: int,
    ignore_index: int,
    scales=(1.0,),
    flip: bool = False,
) -> dict[str, Any]:
    """mIoU, mAcc (and per class) over a split, summed over every process.

    Runs the unwrapped model under the fabric's autocast: processes may hold different numbers
    of images, and an unwrapped forward has no collective to wait on.
    """
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index, fabric.device)
    loader.sampler.set_epoch(0)
    dtype = next(model.parameters()).dtype  # bf16-true runs hold bf16 weights: feed them bf16
    for images, labels in loader:
        images, labels = images.to(fabric.device, dtype=dtype), labels.to(fabric.device)
        with fabric.autocast():
            probs = segment(model, images, scales, flip)
        metric.update(probs, labels)
    return metric.compute()


def train_segmenter(
    fabric: Fabric,
    cfg: SegmentConfig,
    folder: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains one segmentation configuration with one seed in `folder`; returns (and writes) result.json."""
    lr_factor = functools.partial(
        poly_factor, total=cfg.iterations, power=cfg.poly_power, min_factor=cfg.min_lr / cfg.lr
    )
    run = start_run(
        fabric,
        cfg,
        folder,
        unit="iteration",
        lr_factor=lr_factor,
        columns=SEG_METRIC_COLUMNS,
        resume=resume,
        memory_columns=(),
        extra=extra,
    )
    data, device = run.data, fabric.device
    info = data.info

    # files (or canvases) read by workers; training crops sized cfg.crop_size
    augment = SegTrainTransform(
        cfg.crop_hw(), cfg.scale_range, info.mean, info.std, flip=cfg.flip, photometric=cfg.photometric
    )
    whole = SegEvalTransform(info.mean, info.std)
    shard = dict(
        seed=cfg.seed, rank=fabric.global_rank, world_size=fabric.world_size, num_workers=cfg.num_workers
    )
    train_loader = make_file_loader(
        data.train.with_transform(augment), batch_size=cfg.batch_size, train=True, **shard
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"{len(data.train)} training images make no batch of {cfg.batch_size}: lower batch_size"
        )
    eval_set = data.val if len(data.val) else data.test
    eval_loader = make_file_loader(
        eval_set.with_transform(whole), batch_size=cfg.eval_batch_size, train=False, **shard
    )
    test_loader = (
        eval_loader
        if eval_set is data.test
        else make_file_loader(
            data.test.with_transform(whole), batch_size=cfg.eval_batch_size, train=False, **shard
        )
    )

    label = f"{run.folder.parent.name}/{run.folder.name}"
    progress = Progress(fabric, cfg.iterations, run.step, "it", label, quiet, period=cfg.eval_interval)
    loss_metric = MeanMetric(nan_strategy="disable").to(device)  # no host sync per step
    steps_per_epoch, window_start = len(train_loader), time.time()

    while run.step < cfg.iterations:
        epoch, offset = divmod(run.step, steps_per_epoch)
        # a resumed run continues with the next batch
        train_loader.sampler.set_epoch(epoch, offset * cfg.batch_size)
        run.net.train()
        for images, labels in train_loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            lr = run.optimizer.param_groups[0]["lr"]
            loss = seg_loss(run.net(images), labels, cfg.aux_weight, info.ignore_index)
            run.optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            run.optimizer.step()
            run.scheduler.step()
            loss_metric.update(loss.detach())
            run.step += 1
            run.log_step(run.step, loss.detach(), lr)
            shown = progress.live and run.step % 10 == 0
            progress.update(**({"loss": f"{loss.item():.3f}", "lr": f"{lr:.2e}"} if shown else {}))

            if run.step % cfg.eval_interval == 0 or run.step == cfg.iterations:
                train_loss = loss_metric.compute().item()
                run.check_finite(train_loss, f"iteration {run.step}")
                scores = evaluate_segmentation(
                    fabric, run.model, eval_loader, info.num_classes, info.ignore_index
                )
                memory = (  # how far the memory has come (memory.py), on a few evaluation images
                    memory_statistics(run.model, eval_loader, SEG_STATISTICS_IMAGES, info.ignore_index)
                    if sr_blocks(run.model)
                    else {}
                )
                if not len(data.val) or scores["miou"] > run.best_val:
                    run.best_val, run.best_step = scores["miou"], run.step
                    run.checkpoint(BEST_CKPT)
                run.log(
                    dict(
                        zip(
                            SEG_METRIC_COLUMNS,
                            (
                                run.step,
                                lr,
                                train_loss,
                                scores["miou"],
                                scores["macc"],
                                time.time() - window_start,
                            ),
                        ),
                        **memory,
                    )
                )
                loss_metric.reset()
                window_start = time.time()
                progress.report(
                    f"iteration {run.step}/{cfg.iterations}",
                    loss=f"{train_loss:.3f}",
                    miou=f"{scores['miou']:.1f}%",
                )
                run.net.train()
                run.checkpoint(LAST_CKPT)
            elif run.step % cfg.save_interval == 0:
                run.check_finite(loss_metric.compute().item(), f"iteration {run.step}")
                run.checkpoint(LAST_CKPT)
            if run.step >= cfg.iterations:
                break
    progress.close()

    # best on the validation split, or the last; tested whole-image and multi-scale + flip
    run.load_best()
    scores = {
        "whole": evaluate_segmentation(fabric, run.model, test_loader, info.num_classes, info.ignore_index),
        "ms": evaluate_segmentation(
            fabric,
            run.model,
            test_loader,
            info.num_classes,
            info.ignore_index,
            scales=cfg.ms_scales,
            flip=cfg.ms_flip,
        ),
    }
    memory: dict[str, Any] = {}
    if sr_blocks(run.model):  # what the tested checkpoint's blocks do: mIoU without them, their statistics
        with sr_bypassed(run.model):
            bypassed = evaluate_segmentation(
                fabric, run.model, test_loader, info.num_classes, info.ignore_index
            )
        memory["test_miou_bypassed"] = bypassed["miou"]
        memory.update(memory_statistics(run.model, eval_loader, SEG_STATISTICS_IMAGES, info.ignore_index))
    classes = data.train.classes
    if run.rank0:
        write_text_atomic(run.folder / CLASS_IOU_FILE, class_table(classes, scores) + "\n")
    return run.finish(
        {
            "test_miou": scores["whole"]["miou"],
            "test_macc": scores["whole"]["macc"],
            "test_miou_ms": scores["ms"]["miou"],
            "test_macc_ms": scores["ms"]["macc"],
            "test_pixel_acc": scores["whole"]["pixel_acc"],
            "best_val_miou": run.best_val if len(data.val) else None,
            "best_iteration": run.best_step,
            "iterations": cfg.iterations,
            "classes": list(classes),
            "class_iou": dict(zip(classes, scores["whole"]["class_iou"])),
            "class_iou_ms": dict(zip(classes, scores["ms"]["class_iou"])),
            **memory,
        },
        extra,
    )
