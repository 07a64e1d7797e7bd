"""The classification loop (CIFAR, Fashion-MNIST, ImageNet) on Lightning Fabric, read top to bottom.

CPU, one GPU or many (DDP, many nodes) through Fabric; the checkpoint best on validation is the
one tested (without a validation split, or without a test split apart from it, the last); a run
killed at any moment resumes from its last epoch and ends with exactly the weights an
uninterrupted run would have (on the CPU, where kernels are deterministic).
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from torch import nn

from .. import startup
from ..block import diversity_loss
from ..config import ClassifyConfig
from ..data import ImageSet
from ..insert import sr_blocks, sr_bypassed
from ..memory import drain, init_memory, memory_statistics, recorded_weights
from ..metrics_log import METRIC_COLUMNS
from ..run_folder import BEST_CKPT, LAST_CKPT
from ..splits import Splits
from .batches import ClassifyBatches
from .engine import Run, start_run
from .evaluate import evaluate, per_item, running_metrics
from .progress import Progress
from .schedule import classify_factor

MEMORY_COLUMNS = ("val_acc_bypassed",)  # metrics.csv's columns after an SR run's memory statistics


MEMORY_START_IMAGES = 256  # the training images `sr_memory_init` starts the memory from


def first_images(
    train: ImageSet, mean, std, device: torch.device, count: int = MEMORY_START_IMAGES
) -> torch.Tensor:
    """The first `count` training images, normalised as the model sees them (no augmentation), to
    start the memory from: the same on every process and for every resume (build_config admits
    memory inits only for data held in memory)."""
    images = train.images[:count].to(device).float().div_(255)
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return ((images - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def lr_factor(cfg: ClassifyConfig) -> functools.partial:
    """The run's lr schedule as a factor of `lr` by epoch (schedule.py)."""
    return functools.partial(
        classify_factor,
        schedule=cfg.schedule,
        epochs=cfg.epochs,
        milestones=cfg.milestones,
        gamma=cfg.gamma,
        warmup=cfg.warmup_epochs,
    )


def memory_start_fits(cfg: ClassifyConfig, data: Splits) -> None:
    """`sr_memory_init: prototypes` needs at least P training images for its P centroids: one line
    before the run's folder is written (a run that cannot start leaves none to resume)."""
    spec, images = cfg.sr, min(len(data.train), MEMORY_START_IMAGES)
    if cfg.sr_stage is not None and spec.memory_init == "prototypes" and images < spec.memory_blocks:
        raise ValueError(
            f"sr_memory_init=prototypes starts the {spec.memory_blocks} memory blocks (sr_memory_blocks) "
            f"from as many k-means centroids of training images, but the run has {images}: raise "
            "limit_train, or set sr_memory_blocks lower or sr_memory_init=normal"
        )


def start_classify_run(fabric: Fabric, cfg: ClassifyConfig, folder: Path, **kwargs: Any) -> Run:
    """engine.start_run for a classification run: epochs, its schedule, its metrics' columns."""
    return start_run(
        fabric,
        cfg,
        folder,
        unit="epoch",
        lr_factor=lr_factor(cfg),
        columns=METRIC_COLUMNS,
        memory_columns=MEMORY_COLUMNS,
        fits=memory_start_fits,
        **kwargs,
    )


def split_batches(run: Run) -> tuple[ClassifyBatches, ClassifyBatches | None, ClassifyBatches]:
    """A run's training, validation (None where it has none) and test batches; a training split
    without one full batch is an error (every batch is full: drop_last)."""
    fabric, cfg, data = run.fabric, run.cfg, run.data
    mean, std = data.info.stats(cfg.input_size()[0])
    train = ClassifyBatches(fabric, cfg, data.train, mean, std, train=True)
    if len(train) == 0:
        raise ValueError(
            f"the training split has {len(data.train)} images, fewer than one batch of {cfg.batch_size} "
            f"per process: set batch_size={max(1, len(data.train) // fabric.world_size)} or less"
        )
    val = ClassifyBatches(fabric, cfg, data.val, mean, std, train=False) if len(data.val) else None
    return train, val, ClassifyBatches(fabric, cfg, data.test, mean, std, train=False)


def start_memory(run: Run) -> None:
    """A fresh SR run's memory as `sr_memory_init` starts it (a resumed run's is in last.ckpt)."""
    spec = run.cfg.sr
    if run.step > 0 or spec.memory_init == "zeros" or not sr_blocks(run.model):
        return
    mean, std = run.data.info.stats(run.cfg.input_size()[0])
    images = first_images(run.data.train, mean, std, run.fabric.device)
    init_memory(run.model, images, spec.memory_init, spec.memory_init_scale, run.cfg.seed)


def train_classifier(
    fabric: Fabric,
    cfg: ClassifyConfig,
    folder: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    extra: dict[str, Any] | None = None,
    model: nn.Module | None = None,
    data: Splits | None = None,
) -> dict[str, Any]:
    """Trains one configuration with one seed in `folder`; returns (and writes) result.json.
    `model` and `data` replace the config's own (srblock.fit: a model and data sets from Python)."""
    run = start_classify_run(fabric, cfg, folder, resume=resume, model=model, data=data, extra=extra)
    device, num_classes = fabric.device, cfg.num_classes()
    blocks = [block for _, block in sr_blocks(run.model)]
    train_batches, val_batches, test_batches = split_batches(run)
    steps = len(train_batches)
    progress = Progress(
        fabric,
        cfg.epochs * steps,
        run.step * steps,
        "step",
        f"{run.folder.parent.name}/{run.folder.name}",
        quiet,
        period=steps,
    )
    loss_metric, acc_metric = running_metrics(num_classes, device)
    spec = cfg.sr
    start_memory(run)
    startup.mark("batches")
    # sr_diversity: every training forward's weights, with their graph, for its loss term
    diversity = recorded_weights(run.model, grad=True) if spec.diversity > 0 else contextlib.nullcontext({})
    with diversity as chosen:
        for epoch in range(run.step, cfg.epochs):
            epoch_start, lr = time.time(), run.optimizer.param_groups[0]["lr"]
            progress.describe(f"epoch {epoch + 1}/{cfg.epochs}")
            run.net.train()
            correct, seen = torch.zeros((), device=device), 0  # this process's, for the bar only
            for step, (images, labels) in enumerate(train_batches.epoch(epoch)):
                drain(chosen)  # what evaluations recorded since the last step
                logits = run.net(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
                objective = (
                    loss + spec.diversity * sum(map(diversity_loss, drain(chosen))) if chosen else loss
                )
                run.optimizer.zero_grad(set_to_none=True)
                fabric.backward(objective)
                run.optimizer.step()
                loss_metric.update(per_item(loss, labels))
                acc_metric.update(logits.detach(), labels)
                run.log_step(epoch * steps + step + 1, loss.detach(), lr)
                shown = {}
                if progress.live:
                    correct += (logits.detach().argmax(1) == labels).sum()
                    seen += len(labels)
                    if step % 25 == 0:
                        shown = {"loss": f"{loss.item():.3f}", "acc": f"{100 * correct.item() / seen:.1f}%"}
                progress.update(**shown)
            train_loss, train_acc = loss_metric.compute().item(), 100.0 * acc_metric.compute().item()
            run.check_finite(train_loss, f"epoch {epoch + 1}")
            loss_metric.reset()
            acc_metric.reset()
            run.scheduler.step()

            # without a validation split (ImageNet: its val set is the test set) the last epoch is tested
            val = evaluate(run.net, val_batches, num_classes, device)[:2] if val_batches else None
            if val is not None:  # a network whose training loss is finite can still compute NaNs
                run.check_finite(val[0], f"epoch {epoch + 1}", "validation loss")
            memory = memory_epoch(run, val_batches, epoch, num_classes) if blocks else {}
            end_epoch(run, epoch, lr, (train_loss, train_acc), val, memory, epoch_start)
            progress.report(f"epoch {epoch + 1}/{cfg.epochs}", **epoch_summary(train_loss, train_acc, val))
    progress.close()
    return test_and_finish(run, test_batches, val_batches, num_classes, extra)


def memory_epoch(
    run: Run, val_batches: ClassifyBatches | None, epoch: int, num_classes: int
) -> dict[str, float | None]:
    """How far an SR run's memory has come (memory.py) on validation images, and every
    `sr_bypass_every` epochs (and the last) the validation accuracy without its blocks."""
    if val_batches is None:
        return {}
    memory: dict[str, float | None] = memory_statistics(run.model, val_batches.epoch(0))
    every = run.cfg.sr_bypass_every or run.cfg.epochs
    if (epoch + 1) % every == 0 or epoch + 1 == run.cfg.epochs:
        with sr_bypassed(run.model):  # through run.net: the precision test_acc is measured in
            memory["val_acc_bypassed"] = evaluate(run.net, val_batches, num_classes, run.fabric.device)[1]
    return memory


def selects(run: Run) -> bool:
    """Whether the run chooses its tested checkpoint on validation: only where it has a validation
    split and a test split apart from it. Without a test split the validation images are scored,
    so the last epoch's checkpoint is tested: one chosen on those images would score its own choice."""
    return len(run.data.val) > 0 and run.data.tested == "test"


def end_epoch(
    run: Run,
    epoch: int,
    lr: float,
    train: tuple[float, float],
    val: tuple[float, float] | None,
    memory: dict[str, float | None],
    epoch_start: float,
) -> None:
    """An epoch's end, in the order a kill at any moment survives: best.ckpt where validation
    improved, the metrics row, then last.ckpt."""
    val_loss, val_acc = val if val is not None else (None, None)
    run.step = epoch + 1
    if not selects(run) or val_acc > run.best_val:
        run.best_val, run.best_step = (val_acc if selects(run) else float("nan")), epoch
        run.checkpoint(BEST_CKPT)
    # the row before last.ckpt: a kill between the two repeats this epoch rather than losing its row
    row = (epoch + 1, lr, *train, val_loss, val_acc, time.time() - epoch_start)  # (numbered from 1)
    run.log(dict(zip(METRIC_COLUMNS, row), **memory))
    run.checkpoint(LAST_CKPT)


def epoch_summary(train_loss: float, train_acc: float, val: tuple[float, float] | None) -> dict[str, str]:
    """What the bar (or the printed line) shows at an epoch's end."""
    return {
        "loss": f"{train_loss:.3f}",
        "acc": f"{train_acc:.1f}%",
        "val": "-" if val is None else f"{val[1]:.1f}%",
    }


def test_and_finish(
    run: Run,
    test_batches: ClassifyBatches,
    val_batches: ClassifyBatches | None,
    num_classes: int,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """Tests the checkpoint best on validation, or the last where the run does not select on
    validation (`selects`), and for SR the accuracy without its blocks and their statistics;
    writes and returns result.json."""
    run.load_best()
    device = run.fabric.device
    test_loss, test_acc, test_top5 = evaluate(run.net, test_batches, num_classes, device)
    memory = {}
    if sr_blocks(run.model):  # what the tested checkpoint's blocks do
        with sr_bypassed(run.model):
            memory["test_acc_bypassed"] = evaluate(run.net, test_batches, num_classes, device)[1]
        memory.update(memory_statistics(run.model, (val_batches or test_batches).epoch(0)))
    return run.finish(
        {
            "test_acc": test_acc,
            "test_top5": test_top5 if num_classes > 5 else None,  # 5 classes or fewer: always 100
            "test_loss": test_loss,
            "best_val_acc": run.best_val if selects(run) else None,
            "best_epoch": run.best_step + 1,  # numbered from 1, as the console and metrics.csv
            "epoch_base": 1,  # (a result of an earlier release numbered from 0: run_folder reads it so)
            "epochs": run.cfg.epochs,
            "tested_split": run.data.tested,
            # "best_val": chosen on the validation split; "last": the last epoch's (no such choice)
            "tested_checkpoint": "best_val" if selects(run) else "last",
            **memory,
            # for predict, which reads only the run folder
            "classes": run.cfg.class_names() or list(run.data.train.classes),
        },
        extra,
    )
