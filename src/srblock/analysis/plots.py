"""The analysis figures: matplotlib (Agg), colour-blind-safe colours, labelled axes and units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..atomic_files import write_atomic  # noqa: E402

# Okabe-Ito: distinguishable with every common colour-vision deficiency, and in grey print
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
plt.rcParams.update({"axes.prop_cycle": matplotlib.cycler(color=COLOURS), "font.size": 9, "figure.dpi": 110})


def _whole_steps(ax: plt.Axes, steps: list[float]) -> None:
    """Ticks at whole epochs (or iterations): each one where there are few, else whole numbers."""
    found = sorted(set(steps))
    if 0 < len(found) <= 12:
        ax.set_xticks(found)
        if len(found) == 1:  # (one point: matplotlib's own range would be 0.95 to 1.05)
            ax.set_xlim(found[0] - 0.5, found[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


def weights_figure(block: str, data: dict[str, Any], path: Path) -> Path:
    """Mean ± std softmax weight of every memory block, one panel per class (the paper's Fig. 2)."""
    per = data["per_class"]
    fig, axes = plt.subplots(1, len(per), figsize=(2.2 * len(per) + 0.6, 2.6), sharey=True, squeeze=False)
    for ax, (name, stats) in zip(axes[0], per.items()):
        p = np.arange(len(stats["weight_mean"]))
        ax.bar(
            p, stats["weight_mean"], yerr=stats["weight_std"], color=COLOURS[0], ecolor="#444444", capsize=2
        )
        ax.set_title(f"{name} (n={stats['images']})")
        ax.set_xlabel("memory block p")
        ax.set_xticks(p)
    axes[0][0].set_ylabel("softmax weight w_p")
    fig.suptitle(f"{block}: memory weights per class, mean ± std")
    return _save(fig, path)


def features_figure(block: str, data: dict[str, Any], path: Path) -> Path:
    """Channel-wise mean activation before and after the block, and their difference, per class."""
    per = {k: v for k, v in data["per_class"].items() if k != "All"}
    fig, axes = plt.subplots(2, len(per), figsize=(2.6 * len(per) + 0.6, 4.2), sharex=True, squeeze=False)
    for col, (name, stats) in enumerate(per.items()):
        c = np.arange(len(stats["pre_mean"]))
        top, bottom = axes[0][col], axes[1][col]
        top.plot(c, stats["pre_mean"], label="before SR", color=COLOURS[0], lw=1)
        top.plot(c, stats["post_mean"], label="after SR", color=COLOURS[1], lw=1, ls="--")
        top.set_title(name)
        bottom.plot(c, stats["delta_mean"], color=COLOURS[3], lw=1)
        bottom.axhline(0, color="#888888", lw=0.5)
        bottom.set_xlabel("channel")
    axes[0][0].set_ylabel("mean activation")
    axes[1][0].set_ylabel("mean activation delta\n(after - before)")
    axes[0][0].legend(loc="best", fontsize=7)
    fig.suptitle(f"{block}: feature map before and after the block, per class")
    return _save(fig, path)


def memory_figure(block: str, data: dict[str, Any], path: Path) -> Path:
    """The memory: channel means of each block (P x C) and each block's spatial mean map."""
    channel = np.array(data["memory_channel_means"])
    spatial = np.array(data["memory_spatial_means"])
    blocks = len(channel)
    fig = plt.figure(figsize=(8, 2.2 + 0.25 * blocks))
    grid = fig.add_gridspec(2, max(blocks, 1), height_ratios=[max(blocks, 2), 2])
    ax = fig.add_subplot(grid[0, :])
    limit = np.abs(channel).max() or 1.0
    image = ax.imshow(
        channel, aspect="auto", cmap="cividis", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax.set_xlabel("channel")
    ax.set_ylabel("memory block p")
    ax.set_yticks(range(blocks))
    fig.colorbar(image, ax=ax, label="channel mean of M_p")
    limit = np.abs(spatial).max() or 1.0
    for p in range(blocks):
        sub = fig.add_subplot(grid[1, p])
        sub.imshow(spatial[p], cmap="cividis", vmin=-limit, vmax=limit, interpolation="nearest")
        sub.set_title(f"p={p}", fontsize=7)
        sub.set_xticks([])
        sub.set_yticks([])
    fig.suptitle(f"{block}: memory blocks (top: channel means; bottom: spatial means, H x W)")
    return _save(fig, path)


def separation_figure(block: str, data: dict[str, Any], path: Path) -> Path:
    """Entropy of the weights per class against its maximum, with the nearest-centroid accuracy."""
    per = data["per_class"]
    fig, ax = plt.subplots(figsize=(1.0 * len(per) + 2.0, 2.6))
    ax.bar(list(per), [s["weight_entropy"] for s in per.values()], color=COLOURS[2])
    ax.axhline(
        data["max_entropy"],
        color=COLOURS[3],
        ls="--",
        lw=1,
        label=f"uniform over P (ln P = {data['max_entropy']:.2f})",
    )
    ax.set_ylabel("mean weight entropy (nats)")
    ax.set_xlabel("class")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        f"{block}: classes told apart by weights alone: {data['nearest_centroid_acc']:.1f}% "
        f"(chance {data['chance_acc']:.1f}%)",
        fontsize=8,
    )
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _save(fig, path)


def ablation_figure(ablation: dict[str, float], path: Path) -> Path:
    """Test accuracy with the SR blocks and with them bypassed."""
    items = {k: v for k, v in ablation.items() if k != "drop"}
    fig, ax = plt.subplots(figsize=(1.3 * len(items) + 1.5, 2.6))
    bars = ax.bar(list(items), list(items.values()), color=[COLOURS[0]] + [COLOURS[1]] * (len(items) - 1))
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    low = min(items.values())
    ax.set_ylim(max(0.0, low - 5), min(100.0, max(items.values()) + 2))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"ablation: bypassing the SR blocks costs {ablation['drop']:.2f} points", fontsize=8)
    return _save(fig, path)


def learning_curves_figure(rows: list[dict[str, float]], path: Path) -> Path:
    """Loss and accuracy per epoch from metrics.csv (a segmentation run's: loss, mIoU and mAcc
    per evaluation)."""
    if rows and "iteration" in rows[0]:
        return _segmentation_curves(rows, path)
    epochs = [r["epoch"] for r in rows]  # (numbered from 1, as the console numbers them)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(7.5, 2.6))
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], label="train", marker=".")
    acc_ax.plot(epochs, [r["train_acc"] for r in rows], label="train", marker=".")
    if any(r.get("val_loss") is not None for r in rows):
        loss_ax.plot(epochs, [r["val_loss"] for r in rows], label="validation", marker=".", ls="--")
        acc_ax.plot(epochs, [r["val_acc"] for r in rows], label="validation", marker=".", ls="--")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (loss_ax, acc_ax):
        _whole_steps(ax, epochs)  # (no epoch 1.5)
    loss_ax.legend(fontsize=7)
    return _save(fig, path)


def comparison_curves_figure(groups: dict[str, list[list[dict[str, float]]]], path: Path) -> Path:
    """Each configuration's learning curves on the same axes: per epoch (or evaluation) the mean
    over its seeds' metrics.csv rows, in a band from the lowest seed to the highest; the training
    loss and the validation score (the training accuracy where no validation split was held out)."""
    first = next(rows[0] for seeds in groups.values() for rows in seeds if rows)
    unit = "iteration" if "iteration" in first else "epoch"
    score = "val_miou" if unit == "iteration" else "val_acc"
    if all(r.get(score) is None for seeds in groups.values() for rows in seeds for r in rows):
        score = "train_acc"
    labels = {"val_miou": "validation mIoU (%)", "val_acc": "validation accuracy (%)"}
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for colour, (name, seeds) in zip(COLOURS * 4, groups.items()):
        for ax, column in zip(axes, ("train_loss", score)):
            by_step: dict[float, list[float]] = {}
            for rows in seeds:
                for r in rows:
                    if r.get(column) is not None:
                        by_step.setdefault(r[unit], []).append(r[column])
            steps = sorted(by_step)
            values = [by_step[k] for k in steps]
            ax.plot(
                steps, [np.mean(v) for v in values], color=colour, marker=".", label=f"{name} ({len(seeds)})"
            )
            if len(seeds) > 1:
                ax.fill_between(
                    steps, [min(v) for v in values], [max(v) for v in values], color=colour, alpha=0.2
                )
    axes[0].set(xlabel=unit, ylabel="training loss")
    axes[1].set(xlabel=unit, ylabel=labels.get(score, "training accuracy (%)"))
    for ax in axes:
        _whole_steps(ax, [r[unit] for seeds in groups.values() for rows in seeds for r in rows])
    axes[1].legend(fontsize=7, title="configuration (seeds)", title_fontsize=7)
    return _save(fig, path)


def memory_curves_figure(rows: list[dict[str, float]], path: Path) -> Path | None:
    """The SR memory over training, from metrics.csv (memory.py's statistics per epoch, one line
    per block), and the validation accuracy with the blocks bypassed where it was measured;
    None for a run without them."""
    panels = (
        ("sr_mem_ratio", "memory RMS / input RMS", "log"),
        ("sr_weight_entropy", "weight entropy / log P (1: uniform)", "linear"),
        ("sr_weight_class_sep", "classes told apart by weights (%)", "linear"),
    )
    columns = list(rows[0]) if rows else []
    if not any(c.startswith("sr_mem_ratio") for c in columns):
        return None
    unit = "iteration" if "iteration" in columns else "epoch"  # segmentation: per evaluation
    epochs = [r[unit] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.6))
    for ax, (stat, label, scale) in zip(axes, panels):
        for column in (c for c in columns if c.startswith(stat)):
            block = column.removeprefix(stat).lstrip("_") or "SR block"
            ax.plot(epochs, [r[column] for r in rows], marker=".", label=block)
        ax.set(xlabel=unit, ylabel=label, yscale=scale)
        _whole_steps(ax, epochs)
        ax.legend(fontsize=6)
    score = "val_miou" if unit == "iteration" else "val_acc"
    bypassed = [
        (e, r["val_acc_bypassed"]) for e, r in zip(epochs, rows) if r.get("val_acc_bypassed") is not None
    ]
    axes[3].plot(epochs, [r.get(score) for r in rows], marker=".", label="with the blocks")
    if bypassed:
        axes[3].plot([b[0] for b in bypassed], [b[1] for b in bypassed], "x", label="bypassed")
    _whole_steps(axes[3], epochs)
    axes[3].set(
        xlabel=unit, ylabel="validation mIoU (%)" if unit == "iteration" else "validation accuracy (%)"
    )
    axes[3].legend(fontsize=6)
    return _save(fig, path)


def _segmentation_curves(rows: list[dict[str, float]], path: Path) -> Path:
    iterations = [r["iteration"] for r in rows]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(7.5, 2.6))
    loss_ax.plot(
        iterations,
        [r["train_loss"] for r in rows],
        label="train (mean since the last evaluation)",
        marker=".",
    )
    score_ax.plot(iterations, [r["val_miou"] for r in rows], label="mIoU", marker=".")
    score_ax.plot(iterations, [r["val_macc"] for r in rows], label="mAcc", marker=".", ls="--")
    loss_ax.set(xlabel="iteration", ylabel="cross-entropy loss (+ aux)")
    score_ax.set(xlabel="iteration", ylabel="evaluation, whole image (%)")
    loss_ax.legend(fontsize=7)
    score_ax.legend(fontsize=7)
    return _save(fig, path)


def segmentation_examples_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    classes: tuple[str, ...],
    path: Path,
    ignore_index: int = 255,
) -> Path:
    """Image, ground truth and prediction side by side, one row per image, with a class legend.

    Ignored pixels are white in the ground truth. Colours come from matplotlib's tab20 (20
    distinct hues: enough for Cityscapes' 19 classes), in class order.
    """
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(plt.get_cmap("tab20").colors[: len(classes)])
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.2 * rows + 0.8), squeeze=False)
    for row, (image, label, pred) in enumerate(zip(images, labels, preds)):
        shown = image.permute(1, 2, 0).squeeze(-1).numpy()
        axes[row][0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        truth = np.ma.masked_equal(label.numpy(), ignore_index)
        axes[row][1].imshow(truth, cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, interpolation="nearest")
        axes[row][2].imshow(
            pred.numpy(), cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, interpolation="nearest"
        )
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], ("image", "ground truth (white: ignored)", "prediction")):
        ax.set_title(title)
    handles = [matplotlib.patches.Patch(color=cmap(i), label=name) for i, name in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 6), fontsize=7, frameon=False)
    legend_rows = -(-len(classes) // 6)
    fig.tight_layout(rect=(0, (0.22 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path
