"""Segmentation inference (whole image; multi-scale + flip) and its metrics (mIoU, mAcc).

Pixels of the ignore label are left out of every count. Metrics come from one confusion matrix
(torchmetrics, summed over processes); a class that never occurs in the labels nor in the
predictions has no IoU and is left out of the mean (mmsegmentation's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from .models.segmentation import main_output
from .render import render


@torch.no_grad()
def segment(
    model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> torch.Tensor:
    """Class probabilities (B x K x H x W, float32) at the input's size, averaged over `scales`
    (each a resize of the whole image) and, with `flip`, their horizontal mirrors.

    The SR block handles feature sizes other than its memory's (pooling and resizing), so any scale works.
    """
    height, width = images.shape[-2:]
    total, count = None, 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        for mirrored in (False, True) if flip else (False,):
            batch = scaled.flip(-1) if mirrored else scaled
            logits = main_output(model(batch)).float()
            logits = logits.flip(-1) if mirrored else logits
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
            count += 1
    return total / count


def iou_from_confusion(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class IoU and accuracy (recall) from a K x K confusion matrix (rows: label, columns:
    prediction), and their means over the classes that have them (NaN where a class has none)."""
    confusion = confusion.double()
    hits = confusion.diag()
    labelled, predicted = confusion.sum(1), confusion.sum(0)
    union = labelled + predicted - hits
    iou = torch.where(union > 0, hits / union.clamp(min=1), torch.nan)
    acc = torch.where(labelled > 0, hits / labelled.clamp(min=1), torch.nan)
    return {
        "iou": iou,
        "acc": acc,
        "miou": iou.nanmean(),
        "macc": acc.nanmean(),
        "pixel_acc": hits.sum() / labelled.sum().clamp(min=1),
    }


class SegmentationMetric:
    """Accumulates a confusion matrix over batches (and processes) and reports mIoU and mAcc in %."""

    def __init__(
        self, num_classes: int, ignore_index: int | None, device: torch.device | str = "cpu"
    ) -> None:
        self.confusion = MulticlassConfusionMatrix(
            num_classes, ignore_index=ignore_index, validate_args=False
        ).to(device)

    def update(self, probs_or_logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.confusion.update(probs_or_logits.argmax(1), labels)

    def compute(self) -> dict[str, object]:
        scores = iou_from_confusion(self.confusion.compute())
        return {
            "miou": 100.0 * scores["miou"].item(),
            "macc": 100.0 * scores["macc"].item(),
            "pixel_acc": 100.0 * scores["pixel_acc"].item(),
            "class_iou": [100.0 * v for v in scores["iou"].tolist()],
            "class_acc": [100.0 * v for v in scores["acc"].tolist()],
        }


def class_table(classes: Sequence[str], scores: dict[str, dict[str, Any]]) -> str:
    """Markdown: per-class IoU and accuracy of each evaluation (`scores`: name -> `compute()`'s dict)."""
    rows = []
    for i, name in enumerate(classes):
        row: dict[str, Any] = {"class": name}
        for key, s in scores.items():
            row[f"iou_{key}"], row[f"acc_{key}"] = s["class_iou"][i], s["class_acc"][i]
        rows.append(row)
    rows.append(
        {"class": "mean", **{f"{m}_{k}": s[f"m{m}"] for k, s in scores.items() for m in ("iou", "acc")}}
    )
    return render(rows, ["class"] + [f"{m}_{k}" for k in scores for m in ("iou", "acc")])
