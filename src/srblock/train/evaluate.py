"""A classifier's mean loss and top-1 / top-5 accuracy over a split, summed over every process,
without a host-device sync per batch (torchmetrics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from .batches import ClassifyBatches


def running_metrics(
    num_classes: int, device: torch.device, top_k: int = 1
) -> tuple[MeanMetric, MulticlassAccuracy]:
    """Mean loss and accuracy, updated without a host-device sync per batch: no NaN check (a NaN
    shows in the mean) and no validation of the labels (the data set's own)."""
    loss = MeanMetric(nan_strategy="disable").to(device)
    accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro", top_k=top_k, validate_args=False)
    return loss, accuracy.to(device)


def per_item(loss: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A batch's mean loss once per item, so that a MeanMetric weighs batches by their size (a
    Python `weight=len(labels)` would copy to the GPU and wait for it every step)."""
    return loss.detach().float().expand(len(labels))


@torch.no_grad()
def evaluate(
    net: nn.Module, batches: ClassifyBatches, num_classes: int, device: torch.device
) -> tuple[float, float, float]:
    """(mean loss, top-1 and top-5 accuracy in %) over a split, summed over every process."""
    net.eval()
    loss_metric, acc_metric = running_metrics(num_classes, device)
    top5_metric = running_metrics(num_classes, device, top_k=min(5, num_classes))[1]
    for images, labels in batches.epoch(0):
        logits = net(images)
        loss_metric.update(per_item(F.cross_entropy(logits.float(), labels), labels))
        acc_metric.update(logits, labels)
        top5_metric.update(logits, labels)
    return (
        loss_metric.compute().item(),
        100.0 * acc_metric.compute().item(),
        100.0 * top5_metric.compute().item(),
    )
