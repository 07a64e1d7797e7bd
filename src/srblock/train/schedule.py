"""Learning-rate schedules as small pure functions of the epoch."""

from __future__ import annotations

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
