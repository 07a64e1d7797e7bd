"""What an SR block learned (paper IV-D, appendix VIII): the numbers behind `srblock analyze`.

For chosen classes, N images each: the softmax weights of every memory block (mean ± std), the
channel-wise mean activation before and after the block, the memory itself, the accuracy lost
when blocks are bypassed, and beyond the paper: weight entropy, unused blocks, and how well
classes separate by their weight vectors alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..atomic_files import write_text_atomic
from ..block import SqueezeRemember, entropy
from ..busy import working
from ..config import TrainConfig
from ..data import DATASETS, DatasetInfo, DeviceLoader, ImageSet, make_file_loader
from ..data.imagenet import ImageFiles
from ..insert import sr_blocks, sr_bypassed
from ..memory import nearest_centroid_accuracy, recorded_weights
from ..registry import PYTHON_MODEL
from ..run_folder import CONFIG_FILE, RunFolder
from ..run_model import trained_model
from ..splits import load_splits

SPLITS = ("val", "test", "train")


class NotAnalysable(ValueError):
    """A run the analyses cannot read: one without SR blocks, or of a data set they do not read yet.
    `srblock analyze` stops on it; `srblock report` says so on the page and goes on."""


@dataclass
class LoadedRun:
    folder: Path
    cfg: TrainConfig
    info: DatasetInfo
    model: nn.Module
    splits: dict[str, ImageSet | ImageFiles]
    device: torch.device = torch.device("cpu")  # where the model runs; the numbers come back to the CPU


def load_run(
    folder: str | Path,
    data_root: str | Path | None = None,
    *,
    model: nn.Module | None = None,
    splits: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> LoadedRun:
    """A finished run's best checkpoint in its model, and its data split as in training (data
    held in memory, or image files: class folders and ImageNet). A run of `srblock.fit` passes
    its `model` (run.model: the tested weights) and `splits` (the data sets it was given:
    {"val": ..., "test": ...}) or, for data from class folders, `data_root`. `device`: where the
    model runs (a whole test split's ablation wants the GPU); None: where the model is."""
    folder = Path(folder)
    if (
        model is None
        and (folder / CONFIG_FILE).is_file()
        and RunFolder(folder).config().model.startswith(PYTHON_MODEL)
    ):
        raise NotAnalysable(
            f"{folder} trained a model given to srblock.fit in Python, which the run folder cannot "
            "rebuild: analyse it in Python, run_analysis(folder, model=run.model, splits={'val': "
            "val_set, 'test': test_set})"
        )
    if model is None:
        model, cfg, _ = trained_model(folder)
    else:
        cfg = RunFolder(folder).config()
        model.eval()
    if cfg.SEGMENTS:
        raise NotAnalysable(
            f"{folder} is a segmentation run: the analyses compare the memory's weights per image class, "
            "which a segmentation mask does not have (`srblock report RUN_DIR` shows its predictions)"
        )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if splits is not None:
        info = DATASETS[cfg.dataset]
        given = {name: splits.get(name, []) for name in SPLITS}
        return LoadedRun(folder, cfg, info, model, {"train": [], **given}, device)
    if cfg.data_dir is None and data_root is None and cfg.dataset == "folder":
        raise NotAnalysable(
            f"{folder} was trained on data sets given in Python (srblock.fit): pass the folder they "
            "came from with --data DIR (train/, val/, test/ class folders), or in Python "
            "run_analysis(folder, model=run.model, splits={'val': val_set, 'test': test_set})"
        )
    data = load_splits(cfg, data_root)
    RunFolder(folder).check_data(data, data_root or cfg.data_dir, write=False)  # its data, or one line
    info, train, val, test, _ = data
    return LoadedRun(folder, cfg, info, model, {"train": train, "val": val, "test": test}, device)


def labels_of(data: Any) -> torch.Tensor:
    """A split's labels (a Dataset from Python: read item by item)."""
    labels = getattr(data, "labels", None)
    return labels if labels is not None else torch.tensor([int(label) for _, label in data], dtype=torch.long)


def classes_of(run: LoadedRun, data: Any) -> tuple[str, ...]:
    """A split's class names: its own, else the run's recorded ones."""
    return tuple(getattr(data, "classes", None) or run.cfg.class_names() or [])


def batches(
    images: torch.Tensor, info: DatasetInfo, batch: int = 256, device: str | torch.device = "cpu"
) -> DeviceLoader:
    """Normalised batches in order on `device`, exactly as the training loop evaluates."""
    labels = torch.zeros(len(images), dtype=torch.long)
    return DeviceLoader(
        images, labels, batch_size=batch, mean=info.mean, std=info.std, train=False, device=device
    )


def image_batches(
    run: LoadedRun, data: ImageSet | ImageFiles, index: torch.Tensor | None = None, batch: int = 256
) -> Iterator[torch.Tensor]:
    """A split's images (those at `index`, in its order) as the training loop evaluates them:
    normalised on the fast path for data in memory, through the run's own transform for files;
    on the run's device."""
    if isinstance(data, ImageSet):
        chosen = data.images if index is None else data.images[index]
        yield from (images for images, _ in batches(chosen, run.info, batch, run.device))
        return
    if not isinstance(data, ImageFiles):  # a Dataset from Python: its own transform, as fit trained
        chosen = data if index is None else Subset(data, index.tolist())
        yield from (images.to(run.device) for images, _ in DataLoader(chosen, batch_size=batch))
        return
    files = (data if index is None else data.subset(index)).with_transform(
        run.cfg.file_transform(False), channels=run.cfg.in_chans
    )
    loader = make_file_loader(files, batch_size=batch, train=False, seed=run.cfg.seed)
    yield from (images.to(run.device, non_blocking=True) for images, _ in loader)


@torch.no_grad()
def predict(model: nn.Module, images: Iterable[torch.Tensor]) -> torch.Tensor:
    """Each image's predicted class, on the CPU."""
    return torch.cat([model(x).argmax(1).cpu() for x in working(images, "evaluating (batches)")])


def accuracy(model: nn.Module, run: LoadedRun, data: ImageSet | ImageFiles) -> float:
    """Top-1 accuracy (%) of `model` on every image of `data`, a split of `run`."""
    return 100.0 * (predict(model, image_batches(run, data)) == labels_of(data)).float().mean().item()


def pick_classes(
    names: tuple[str, ...], wanted: list[str] | None, count: int = 5, present: list[int] | None = None
) -> list[int]:
    """Class indices by name or number; by default `count` spread evenly over the label set (over
    `present`, the classes the analysed split holds images of, where given)."""
    if not wanted:
        pool = sorted(present) if present is not None else list(range(len(names)))
        spread = np.linspace(0, len(pool) - 1, min(count, len(pool)))
        return sorted({pool[int(round(i))] for i in spread})
    picked = []
    for item in wanted:
        if item.isdigit() and int(item) < len(names):
            picked.append(int(item))
        elif item in names:
            picked.append(names.index(item))
        else:
            raise ValueError(
                f"unknown class {item!r}: give an index 0..{len(names) - 1} "
                f"or a name ({', '.join(names[:10])}...)"
            )
    return picked


@torch.no_grad()
def capture(model: nn.Module, images: Iterable[torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Per SR block: its weights (N x P) and channel means of its input and output (N x C), on
    the CPU."""
    blocks = sr_blocks(model)
    seen: dict[str, dict[str, list[torch.Tensor]]] = {
        name: {"weights": [], "pre": [], "post": []} for name, _ in blocks
    }

    def hook(name: str):
        def grab(module: SqueezeRemember, args: tuple, out: torch.Tensor) -> None:
            seen[name]["pre"].append(args[0].float().mean(dim=(2, 3)).cpu())
            seen[name]["post"].append(out.float().mean(dim=(2, 3)).cpu())

        return grab

    handles = [block.register_forward_hook(hook(name)) for name, block in blocks]
    try:
        with recorded_weights(model) as weights:
            for x in working(images, "recording the SR blocks (batches)"):
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    for name in seen:
        seen[name]["weights"] = [w.float().cpu() for w in weights[name]]
    return {name: {k: torch.cat(v) for k, v in parts.items()} for name, parts in seen.items()}


def analyze(run: LoadedRun, classes: list[int], per_class: int = 50, split: str = "val") -> dict[str, Any]:
    """Every number of the analysis, as plain lists (what weights.json etc. hold)."""
    blocks = sr_blocks(run.model)
    if not blocks:
        raise NotAnalysable(
            f"{run.folder} trained {run.cfg.model} without SR blocks: nothing to analyse "
            "(train with --set sr_stage=M)"
        )
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    data = run.splits[split]
    names, all_labels = classes_of(run, data), labels_of(data)
    if not len(data):
        raise ValueError(f"the {split} split of {run.folder} is empty: choose --split test")
    # N images of every class (all classes: for the 'All' panel and the centroid test)
    index = torch.cat([(all_labels == c).nonzero().flatten()[:per_class] for c in range(len(names))])
    labels = all_labels[index]
    empty = [names[c] for c in classes if not (labels == c).any()]
    if empty:
        other = " (or another split)" if split != "test" else ""
        raise ValueError(
            f"the {split} split of {run.folder} has no images of {', '.join(empty)}: choose other "
            f"classes{other}"
        )
    captured = capture(run.model, image_batches(run, data, index))

    result: dict[str, Any] = {
        "split": split,
        "per_class": per_class,
        "classes": [names[c] for c in classes],
        "blocks": {},
    }
    for name, block in blocks:
        got = captured[name]
        weights, pre, post = got["weights"], got["pre"], got["post"]
        per = {}
        for c in ["all", *classes]:
            mask = torch.ones_like(labels, dtype=torch.bool) if c == "all" else labels == c
            w, a, b = weights[mask], pre[mask], post[mask]
            per["All" if c == "all" else names[c]] = {
                "images": int(mask.sum()),
                "weight_mean": w.mean(0).tolist(),
                "weight_std": (w.std(0, unbiased=True) if len(w) > 1 else torch.zeros(w.shape[1])).tolist(),
                "weight_entropy": entropy(w).mean().item(),
                "pre_mean": a.mean(0).tolist(),
                "post_mean": b.mean(0).tolist(),
                "delta_mean": (b - a).mean(0).tolist(),
            }
        class_means = torch.stack([weights[labels == c].mean(0) for c in labels.unique()])
        memory = block.memory.detach().float().cpu()
        result["blocks"][name] = {
            "channels": block.channels,
            "size": list(block.size),
            "memory_blocks": block.memory_blocks,
            "per_class": per,
            "weight_sums": [weights.sum(1).min().item(), weights.sum(1).max().item()],
            "max_entropy": float(np.log(block.memory_blocks)),
            "unused_blocks": [
                p for p in range(block.memory_blocks) if class_means[:, p].max() < 0.5 / block.memory_blocks
            ],
            "nearest_centroid_acc": nearest_centroid_accuracy(weights, labels),
            "chance_acc": 100.0 / len(labels.unique()),
            "memory_channel_means": memory.mean(dim=(2, 3)).tolist(),  # P x C
            "memory_spatial_means": memory.mean(dim=1).tolist(),  # P x H x W
        }
    result["ablation"] = ablation(run)
    return result


def ablation(run: LoadedRun) -> dict[str, Any]:
    """Test accuracy with the SR blocks, with all bypassed, and with each bypassed alone."""
    test = run.splits["test"]
    blocks = sr_blocks(run.model)
    out = {"with_sr": accuracy(run.model, run, test)}
    with sr_bypassed(run.model):
        out["all_bypassed"] = accuracy(run.model, run, test)
    if len(blocks) > 1:
        for name, _ in blocks:
            with sr_bypassed(run.model, [name]):
                out[f"bypassed {name}"] = accuracy(run.model, run, test)
    out["drop"] = out["with_sr"] - out["all_bypassed"]
    return out


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))
