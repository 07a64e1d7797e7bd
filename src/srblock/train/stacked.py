"""Seeds of one classification configuration trained as one stacked network (srblock.stack), read
top to bottom beside classify.py, whose pieces it shares.

Each seed is a run of its own: its folder, config.yaml, initialisation, data split and order,
augmentation, optimiser state, checkpoints, metrics and result.json are what it would have alone,
so `table`, `analyze`, `predict`, `export` and `--resume` cannot tell the difference. What it
shares with the others is the forward and the backward: one batched network on one device. A
seed whose training diverges is reported and leaves the stack; the others go on.

Equal to training alone up to rounding: the batched kernels sum in another order (float64 shows
the two agree to 1e-12; tests/test_stacked.py), and each seed draws its own dropout masks from
one generator rather than its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric

from .. import startup
from ..config import ClassifyConfig
from ..insert import sr_blocks
from ..run_folder import RunDiverged
from ..stack import StackedModel, member_state, stack_state, stacked_optimizer, write_members
from .batches import ClassifyBatches
from .classify import (
    end_epoch,
    epoch_summary,
    lr_factor,
    memory_epoch,
    split_batches,
    start_classify_run,
    start_memory,
    test_and_finish,
    train_classifier,
)
from .compiling import compiled
from .engine import Run
from .progress import Progress


@dataclass
class Stack:
    """The runs trained together, and their stacked network, optimiser and schedule."""

    runs: list[Run]
    model: StackedModel
    net: Any  # the model as Fabric (and torch.compile) set it up
    optimizer: Any
    scheduler: torch.optim.lr_scheduler.LRScheduler


def stack_runs(fabric: Fabric, runs: list[Run], scheduler_state: dict[str, Any]) -> Stack:
    """One network of the runs' models as they stand, one optimiser of their optimisers' states."""
    model = StackedModel([run.model.train() for run in runs])  # (an evaluation may have left them in eval)
    first = runs[0]
    optimizer = stacked_optimizer(model, first.model, first.optimizer.optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(first.cfg))
    optimizer.load_state_dict(stack_state([run.optimizer.state_dict() for run in runs]))
    scheduler.load_state_dict(scheduler_state)
    optimizer._opt_called = True  # it takes over stepped optimisers: no "scheduler before optimiser" warning
    net, optimizer = fabric.setup(compiled(model, first.compiled), optimizer)
    return Stack(runs, model, net, optimizer, scheduler)


def sync_members(stack: Stack) -> None:
    """Each run's own model and optimiser get its slice of the stack's (to save, evaluate or restack)."""
    write_members(stack.model, [run.model for run in stack.runs])
    state, schedule = stack.optimizer.state_dict(), stack.scheduler.state_dict()
    for i, run in enumerate(stack.runs):
        run.optimizer.load_state_dict(member_state(state, i))
        run.scheduler.load_state_dict(schedule)  # one schedule for all (saved in each checkpoint)


def stacked_batches(
    batches: Sequence[ClassifyBatches], epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each run's batches of `epoch`, stacked: images (N, B, C, H, W), labels (N, B)."""
    for pairs in zip(*(b.epoch(epoch) for b in batches), strict=True):
        yield torch.stack([images for images, _ in pairs]), torch.stack([labels for _, labels in pairs])


def member_losses(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Each member's mean cross-entropy (N,): their sum's gradient is each member's own loss's."""
    losses = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), reduction="none", label_smoothing=label_smoothing
    )
    return losses.view(labels.shape).mean(1)


@torch.no_grad()
def evaluate_stacked(net: Any, batches: Sequence[ClassifyBatches]) -> list[tuple[float, float]]:
    """Each member's (mean loss, top-1 accuracy in %) over its split."""
    net.eval()
    loss, correct, seen = None, None, 0
    for images, labels in stacked_batches(batches, 0):
        logits = net(images)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16-true weights give bf16
        batch_loss = member_losses(logits, labels) * labels.shape[1]
        batch_correct = (logits.argmax(-1) == labels).sum(1)
        loss = batch_loss if loss is None else loss + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
        seen += labels.shape[1]
    pairs = zip(loss.tolist(), correct.tolist(), strict=True)
    return [(total / seen, 100.0 * right / seen) for total, right in pairs]


def stopped(
    stack: Stack, losses: list[float], epoch: int, what: str, failed: dict[Path, str], progress: Progress
) -> list[int]:
    """The indices of the stack's runs whose loss is sound; each of the others is stopped as
    diverged (its folder says why, and `failed` gets its error)."""
    healthy = []
    for i, (run, loss) in enumerate(zip(stack.runs, losses, strict=True)):
        try:
            # last.ckpt keeps the epoch before; a large validation loss is recorded, not a divergence
            run.check_finite(loss, f"epoch {epoch + 1}", what)
            healthy.append(i)
        except RunDiverged as err:
            failed[run.folder] = str(err)
            progress.note(f"{run.folder.name} stopped", diverged=f"{what} {loss:.3g}")
    return healthy


def train_stacked(
    fabric: Fabric,
    jobs: Sequence[tuple[ClassifyConfig, Path, dict[str, Any] | None]],
    *,
    resume: bool = False,
    quiet: bool = False,
) -> tuple[dict[Path, dict[str, Any]], dict[Path, str]]:
    """Trains (config, folder, extra) runs that differ only in their seed as one stack; returns
    the result.json of each run that finished and the error of each that did not (it diverged)."""
    # each run's own model only evaluates and saves (eager); the stack is what trains
    runs = [
        start_classify_run(fabric, cfg, folder, resume=resume, compile_model=False, extra=extra)
        for cfg, folder, extra in jobs
    ]
    extras = {run.folder: extra for run, (_, _, extra) in zip(runs, jobs, strict=True)}
    if len({run.step for run in runs}) > 1:  # killed between two of their checkpoints: one at a time
        fabric.print("the stacked runs stopped at different epochs: they resume one at a time")
        return {
            run.folder: train_classifier(fabric, run.cfg, run.folder, resume=True, quiet=quiet,
                                         extra=extras[run.folder])
            for run in runs
        }, {}  # fmt: skip
    cfg, first = runs[0].cfg, runs[0]
    for run in runs:
        start_memory(run)
    batches = {run.folder: split_batches(run) for run in runs}
    steps, num_classes = len(batches[first.folder][0]), cfg.num_classes()
    stack = stack_runs(fabric, runs, first.scheduler.state_dict())
    seeds = "+".join(str(run.cfg.seed) for run in runs)
    label = f"{first.folder.parent.name}/seeds {seeds}"
    progress = Progress(fabric, cfg.epochs * steps, first.step * steps, "step", label, quiet, period=steps)
    failed: dict[Path, str] = {}

    startup.mark("batches")
    for epoch in range(first.step, cfg.epochs):
        epoch_start, lr = time.time(), stack.optimizer.param_groups[0]["lr"]
        progress.describe(f"epoch {epoch + 1}/{cfg.epochs}")
        stack.net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        members = [batches[run.folder][0] for run in stack.runs]
        for step, (images, labels) in enumerate(stacked_batches(members, epoch)):
            logits = stack.net(images)
            losses = member_losses(logits, labels, cfg.label_smoothing)
            stack.optimizer.zero_grad(set_to_none=True)
            fabric.backward(losses.sum())
            stack.optimizer.step()
            for run, loss in zip(stack.runs, losses.detach(), strict=True):
                run.log_step(epoch * steps + step + 1, loss, lr)
            loss_sum = loss_sum + losses.detach() * labels.shape[1]
            correct = correct + (logits.detach().argmax(-1) == labels).sum(1)
            seen += labels.shape[1]
            progress.update()
        train = list(zip((loss_sum / seen).tolist(), (100.0 * correct / seen).tolist(), strict=True))

        healthy = stopped(stack, [loss for loss, _ in train], epoch, "training loss", failed, progress)
        if not healthy:
            break
        if len(healthy) < len(stack.runs):  # the others go on as a stack of their own
            sync_members(stack)
            train = [train[i] for i in healthy]
            stack = stack_runs(fabric, [stack.runs[i] for i in healthy], stack.scheduler.state_dict())
        stack.scheduler.step()
        sync_members(stack)

        # without a validation split the last epoch is tested
        have_val = batches[first.folder][1] is not None
        vals = evaluate_stacked(stack.net, [batches[r.folder][1] for r in stack.runs]) if have_val else None
        if vals:  # a validation loss no longer a number stops its run too, before it checkpoints
            healthy = stopped(stack, [loss for loss, _ in vals], epoch, "validation loss", failed, progress)
            if not healthy:
                break
            if len(healthy) < len(stack.runs):
                train, vals = [train[i] for i in healthy], [vals[i] for i in healthy]
                stack = stack_runs(fabric, [stack.runs[i] for i in healthy], stack.scheduler.state_dict())
        for i, run in enumerate(stack.runs):
            val = vals[i] if vals else None
            blocks = sr_blocks(run.model)
            memory = memory_epoch(run, batches[run.folder][1], epoch, num_classes) if blocks else {}
            end_epoch(run, epoch, lr, train[i], val, memory, epoch_start)
            progress.note(
                f"{run.folder.name} epoch {epoch + 1}/{cfg.epochs}", **epoch_summary(*train[i], val)
            )
        progress.report(f"epoch {epoch + 1}/{cfg.epochs}", seeds=str(len(stack.runs)))
    progress.close()

    results = {
        run.folder: test_and_finish(run, batches[run.folder][2], batches[run.folder][1], num_classes,
                                    {**(extras[run.folder] or {}), "stacked": len(runs)})
        for run in stack.runs if run.folder not in failed
    }  # fmt: skip
    return results, failed
