"""Learning-rate schedules as small pure functions of the epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence


def multistep_factor(epoch: int, milestones: Sequence[int], gamma: float) -> float:
    """The factor on the base lr in `epoch` (0-based): gamma once per milestone passed.

    The paper's CIFAR-100 recipe: milestones 60, 120, 160 and gamma 0.2, so epochs 0-59 run at
    lr, 60-119 at 0.2 lr, and so on.
    """
    return gamma ** sum(epoch >= m for m in milestones)


def poly_factor(iteration: int, total: int, power: float, min_factor: float = 0.0) -> float:
    """The factor on the base lr at `iteration` (0-based) of `total`: polynomial decay to `min_factor`.

    The paper's Cityscapes recipe (mmsegmentation's): lr 0.01, power 0.9, minimum 1e-4, so
    `min_factor` = 1e-4 / 0.01, reached at `total`.
    """
    progress = min(iteration, total) / total
    return (1.0 - min_factor) * (1.0 - progress) ** power + min_factor


def warmup_factor(epoch: int, warmup: int) -> float:
    """Linear warm-up over the first `warmup` epochs: lr / (warmup + 1), 2 lr / (warmup + 1), ...;
    1 after them. A pretrained network's features survive the first steps of a new head."""
    return (epoch + 1) / (warmup + 1) if epoch < warmup else 1.0


def cosine_factor(epoch: int, epochs: int, warmup: int = 0) -> float:
    """Cosine decay from lr (after `warmup` epochs) to 0 at `epochs`; timm's and most fine-tuning
    recipes' schedule."""
    if epoch < warmup:
        return warmup_factor(epoch, warmup)
    progress = (epoch - warmup) / max(1, epochs - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def classify_factor(
    epoch: int, *, schedule: str, epochs: int, milestones: Sequence[int], gamma: float, warmup: int
) -> float:
    """A classification run's lr factor in `epoch`: its `schedule` (step or cosine) after warm-up.
    The warm-up leaves the last epoch at least at the full lr: a recipe's warm-up of 3 epochs in a
    run of 3 (or fewer) would otherwise never reach it."""
    warmup = min(warmup, max(0, epochs - 1))
    if schedule == "cosine":
        return cosine_factor(epoch, epochs, warmup)
    return warmup_factor(epoch, warmup) * multistep_factor(epoch, milestones, gamma)
