"""The paper's latency measurements (its section III-E) as settings to measure here, each with the
paper's own numbers beside ours (`srblock bench --paper`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .bench import bench_pair
from .factory import create_model
from .spec import SRSpec


@dataclass(frozen=True)
class PaperSetting:
    """One of the paper's latency measurements (section III-E), with its numbers."""

    name: str
    model: dict[str, Any]  # create_model's arguments
    input_size: tuple[int, int, int]
    batch: int
    train: bool
    device: str | None  # None: the device asked for
    paper_plain_ms: float | None
    paper_sr_ms: float | None


_R50_CIFAR = dict(name="resnet50_cifar", num_classes=100, sr_stage=3, sr=SRSpec(memory_blocks=2))
_R50_IMAGENET = dict(name="resnet50", sr_stage=3, sr=SRSpec(memory_blocks=10, hidden=16))
PAPER_SETTINGS = (
    PaperSetting("(a) CIFAR-100 R50", _R50_CIFAR, (3, 32, 32), 128, True, None, 377.0, 379.0),
    PaperSetting("(a) CIFAR-100 R50", _R50_CIFAR, (3, 32, 32), 128, False, None, None, None),
    PaperSetting("(b) ImageNet R50", _R50_IMAGENET, (3, 224, 224), 5, False, None, 61.74, 62.89),
    PaperSetting("(c) CPU R50, 1 image", _R50_IMAGENET, (3, 224, 224), 1, False, "cpu", 41.45, 43.01),
)


def bench_paper(
    device: str | torch.device,
    *,
    repeats: int = 50,
    warmup: int = 5,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    compile: str | None = None,
    settings: Sequence[PaperSetting] = PAPER_SETTINGS,
) -> list[dict[str, Any]]:
    """The paper's settings measured here (each with the paper's own numbers beside ours)."""
    rows = []
    for s in settings:
        kwargs = dict(s.model)
        model = create_model(kwargs.pop("name"), **kwargs)
        row = bench_pair(
            model,
            s.input_size,
            batch=s.batch,
            train=s.train,
            device=s.device or device,
            repeats=repeats,
            warmup=warmup,
            dtype=dtype,
            channels_last=channels_last,
            compile=compile,
        )
        paper_pct = 100 * (s.paper_sr_ms / s.paper_plain_ms - 1) if s.paper_plain_ms else None
        rows.append(
            {
                "setting": s.name,
                **row,
                "paper_plain_ms": s.paper_plain_ms,
                "paper_sr_ms": s.paper_sr_ms,
                "paper_overhead_pct": paper_pct,
            }
        )
    return rows
