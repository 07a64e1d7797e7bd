"""The SR memory: how it may start (init strategies beyond the paper's zeros) and how far it has
come (the statistics a run logs each epoch). docs/memory.md measures what they do.

Statistics, per SR block, on validation images:
- `sr_mem_ratio`: RMS of the memory over RMS of the block's input: how much the block can change
  the feature map (the paper's zero-initialised memory starts at 0).
- `sr_weight_entropy`: mean entropy of the softmax weights over log P (1: uniform, every image
  mixes the blocks alike; 0: each image picks one block).
- `sr_weight_class_sep`: accuracy (%) of telling the classes apart by the weights alone
  (nearest centroid, centroids from half of each class's images, tested on the other half).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .block import entropy
from .insert import sr_blocks
from .spec import MEMORY_INITS

STATISTICS = ("sr_mem_ratio", "sr_weight_entropy", "sr_weight_class_sep")


@contextlib.contextmanager
def recorded_weights(model: nn.Module, grad: bool = False) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Inside, every forward of an SR block of `model` appends the block's softmax weights (B x P)
    to the list under its name; `grad`: with their graph (for a loss term), else detached.

    A forward pre-hook computes them again from the block's input, so the block's forward stays
    the math alone; the hooks stay registered for the whole context, and the caller clears the
    lists as it consumes them. torch.compile traces hooks with the model at its first call and does
    not see hooks added later: record through the uncompiled module, or enter this context before
    a compiled model's first call."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name, _ in sr_blocks(model)}

    def hook(name: str):
        def record(block: nn.Module, args: tuple) -> None:
            if grad:
                seen[name].append(block.memory_weights(args[0]))
            else:
                with torch.no_grad():
                    seen[name].append(block.memory_weights(args[0]).detach())

        return record

    handles = [block.register_forward_pre_hook(hook(name)) for name, block in sr_blocks(model)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def drain(recorded: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
    """Every weight tensor `recorded_weights` holds, the lists emptied."""
    out = [w for ws in recorded.values() for w in ws]
    for ws in recorded.values():
        ws.clear()
    return out


def nearest_centroid_accuracy(weights: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (%) of telling classes apart by weight vectors alone: centroids from the even
    images of each class, tested on the odd ones."""
    first = torch.zeros_like(labels, dtype=torch.bool)
    for c in labels.unique():
        index = (labels == c).nonzero().flatten()
        first[index[::2]] = True
    classes = labels[first].unique()
    centroids = torch.stack([weights[first & (labels == c)].mean(0) for c in classes])
    guess = classes[torch.cdist(weights[~first], centroids).argmin(1)]
    return 100.0 * (guess == labels[~first]).float().mean().item() if (~first).any() else float("nan")


def _suffix(name: str, several: bool) -> str:
    """A block's column suffix: none for a run's only block, else its stage (layer3.sr -> _layer3)."""
    return "_" + name.removesuffix(".sr").replace(".", "_") if several else ""


def _as_parameters(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images on the model's device and in its parameters' dtype (bf16-true runs hold bf16 weights)."""
    param = next(model.parameters())
    return images.to(param.device, dtype=param.dtype if param.is_floating_point() else images.dtype)


def statistic_columns(model: nn.Module) -> tuple[str, ...]:
    """metrics.csv's columns for a model's SR blocks (none without)."""
    blocks = sr_blocks(model)
    return tuple(f"{s}{_suffix(n, len(blocks) > 1)}" for n, _ in blocks for s in STATISTICS)


def image_labels(labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """One class per image: the label itself, or for a segmentation mask its most frequent scored
    class (-1 where no pixel is scored)."""
    if labels.dim() == 1:
        return labels
    flat = labels.flatten(1)
    out = torch.full((len(flat),), -1, dtype=torch.long)
    for i, row in enumerate(flat):
        scored = row[row != ignore_index] if ignore_index is not None else row
        if len(scored):
            out[i] = scored.mode().values
    return out


@torch.no_grad()
def memory_statistics(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    max_images: int = 2048,
    ignore_index: int | None = None,
) -> dict[str, float]:
    """Every SR block's statistics over the first `max_images` images of `batches` (the model in
    eval mode, as it is evaluated). Segmentation masks count as their images' main class."""
    blocks = sr_blocks(model)
    if not blocks:
        return {}
    sums = {n: [0.0, 0] for n, _ in blocks}  # sum of squares of the block's input, element count

    def hook(name: str):
        def capture(module: nn.Module, args: tuple) -> None:
            x = args[0].float()
            sums[name][0] += float(x.square().sum())
            sums[name][1] += x.numel()

        return capture

    handles = [b.register_forward_pre_hook(hook(n)) for n, b in blocks]
    labels, seen, was_training = [], 0, model.training
    model.eval()
    try:
        with recorded_weights(model) as weights:
            for images, batch_labels in batches:
                take = min(len(images), max_images - seen)
                model(_as_parameters(model, images[:take]))
                labels.append(image_labels(batch_labels[:take].cpu(), ignore_index))
                seen += take
                if seen >= max_images:
                    break
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    labels_all = torch.cat(labels)
    scored = labels_all >= 0
    stats = {}
    for name, block in blocks:
        if not weights[name]:  # a compiled graph that runs without the hooks (see recorded_weights)
            raise ValueError(f"{name} recorded no weights: give memory_statistics the uncompiled model")
        w = torch.cat(weights[name]).float().cpu()
        suffix = _suffix(name, len(blocks) > 1)
        input_rms = math.sqrt(sums[name][0] / max(1, sums[name][1]))
        memory_rms = float(block.memory.detach().float().square().mean().sqrt())
        stats[f"sr_mem_ratio{suffix}"] = memory_rms / input_rms if input_rms > 0 else float("nan")
        # one memory block (P = 1) has no choice to measure
        log_p = math.log(block.memory_blocks)
        stats[f"sr_weight_entropy{suffix}"] = float(entropy(w).mean()) / log_p if log_p > 0 else float("nan")
        stats[f"sr_weight_class_sep{suffix}"] = nearest_centroid_accuracy(w[scored], labels_all[scored])
    return stats


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> torch.Tensor:
    """k centroids of `points` (N x D): k-means++ seeding, then Lloyd's iterations; deterministic
    for a given generator. An empty cluster keeps its centroid."""
    if len(points) < k:
        raise ValueError(f"k-means needs at least {k} points for {k} centroids, got {len(points)}")
    centroids = points[torch.randint(len(points), (1,), generator=generator)]
    while len(centroids) < k:
        distance = torch.cdist(points, centroids).min(1).values.square()
        if distance.sum() <= 0:  # every point is a centroid already: any will do
            distance = torch.ones_like(distance)
        pick = torch.multinomial(distance / distance.sum(), 1, generator=generator)
        centroids = torch.cat([centroids, points[pick]])
    for _ in range(iterations):
        assign = torch.cdist(points, centroids).argmin(1)
        for j in range(k):
            members = points[assign == j]
            if len(members):
                centroids[j] = members.mean(0)
    return centroids


@torch.no_grad()
def init_memory(model: nn.Module, images: torch.Tensor, strategy: str, scale: float, seed: int) -> None:
    """Starts every SR block's memory by `strategy` from the block inputs that `images` (a
    training batch, prepared as the model takes it) produce:

    - `zeros`: the paper's (the block is the identity at start);
    - `normal`: Gaussian noise of RMS `scale` x the input's RMS;
    - `prototypes`: the P k-means centroids of the input maps (resized to the memory's size),
      minus their mean (so equal weights add nothing), scaled to RMS `scale` x the input's RMS.
    Not the identity at start unless `zeros`.
    """
    if strategy not in MEMORY_INITS:
        raise ValueError(f"sr_memory_init must be one of {', '.join(MEMORY_INITS)}, got {strategy!r}")
    blocks = sr_blocks(model)
    if strategy == "zeros" or not blocks:
        for _, block in blocks:
            block.memory.zero_()
        return
    inputs: dict[str, torch.Tensor] = {}
    handles = [
        b.register_forward_pre_hook(
            lambda m, args, name=n: inputs.__setitem__(name, args[0].detach().float())
        )
        for n, b in blocks
    ]
    was_training = model.training
    model.eval()
    try:
        model(_as_parameters(model, images))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    generator = torch.Generator().manual_seed(seed)
    for name, block in blocks:
        x = inputs[name].cpu()
        if tuple(x.shape[-2:]) != block.size:
            x = F.adaptive_avg_pool2d(x, block.size)
        target = scale * float(x.square().mean().sqrt())
        if strategy == "normal":
            memory = torch.randn(block.memory.shape, generator=generator)
        elif len(x) < block.memory_blocks:  # (a run checks this before it starts: memory_start_fits)
            raise ValueError(
                f"sr_memory_init=prototypes starts the {block.memory_blocks} memory blocks from as many "
                f"k-means centroids, but {len(x)} images were given: give at least {block.memory_blocks}"
            )
        else:
            centroids = kmeans(x.flatten(1), block.memory_blocks, generator)
            memory = (centroids - centroids.mean(0)).view(block.memory.shape)
        rms = float(memory.square().mean().sqrt())
        block.memory.copy_(memory * (target / rms if rms > 0 else 0.0))
