"""What a segmentation run predicts: the first test images beside their labels and predictions."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.seg_transforms import SegEvalTransform
from ..run_model import trained_model
from ..seg_eval import segment
from ..splits import load_splits
from .plots import segmentation_examples_figure


@torch.no_grad()
def segmentation_examples(
    folder: str | Path, data_root: str | Path | None = None, count: int = 4, device: str | None = None
) -> Path:
    """RUN_DIR/analysis/segmentation_examples.png: `count` test images, their labels and the
    tested checkpoint's whole-image predictions (computed on `device`; None: the CPU)."""
    folder = Path(folder)
    model, cfg, _ = trained_model(folder)
    if not cfg.SEGMENTS:
        raise ValueError(f"{folder} is a {cfg.dataset} run, not a segmentation run")
    model.to(device or "cpu")
    info, _, _, test, _ = load_splits(cfg, data_root)
    normalise = SegEvalTransform(info.mean, info.std)
    images, labels, preds = [], [], []
    for i in range(min(count, len(test))):
        image, label = test[i]
        x, _ = normalise(image, label)
        images.append(image)
        labels.append(label)
        preds.append(segment(model, x[None].to(device or "cpu")).argmax(1)[0].cpu())
    out = folder / "analysis"
    out.mkdir(exist_ok=True)
    return segmentation_examples_figure(
        images, labels, preds, test.classes, out / "segmentation_examples.png", ignore_index=info.ignore_index
    )
