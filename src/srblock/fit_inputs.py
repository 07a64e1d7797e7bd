"""What `srblock.fit` accepts, checked before anything is written: data sets that are map-style
(a length and items by index), whose items are (float C x H x W image, class index); a model
that takes their images and has one output per class; class names, each once. Each mistake is
one line that says what to change, not a traceback in the first step (or after an epoch)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from .insert import evaluating
from .splits import listed_labels


def first_item(data: object, label: str) -> tuple[torch.Tensor, object]:
    """A data set's first item, which must be (image, class): `data` a map-style Dataset (a length
    and items by index, as DataLoader's sampler reads it), each item a pair."""
    if isinstance(data, IterableDataset) or not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        kind = type(data).__name__
        raise ValueError(
            f"srblock.fit: {label} ({kind}) is not a map-style data set: give one with a length and items by "
            "index (torch.utils.data.Dataset with __len__ and __getitem__; an IterableDataset cannot resume)"
        )
    item = data[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        shown = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else f"a {type(item).__name__}"
        raise ValueError(
            f"srblock.fit: {label}'s items must be (image, class index) pairs, got {shown}: give it a "
            "transform or wrapper that returns two"
        )
    return item[0], item[1]


def checked_image(image: object) -> torch.Tensor:
    """A data set's first image, which must be what the training loop feeds a model: a float
    C x H x W tensor (a transform such as ToTensor or ToDtype(float32, scale=True) makes one)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(
            f"srblock.fit: a data set's items must be (image, class) with the image a C x H x W tensor, "
            f"got {shape}: give the data set a transform (e.g. torchvision's ToTensor)"
        )
    if not image.is_floating_point():
        raise ValueError(
            f"srblock.fit: the images are {image.dtype}, not float: add "
            "transforms.ToDtype(torch.float32, scale=True) (or ToTensor) to the data set's transform"
        )
    return image


def check_head(model: nn.Module, image: torch.Tensor, classes: int, label: str = "train_set") -> None:
    """One forward of a split's first image: images the model cannot take, or a head with another
    number of outputs than classes, are one line here rather than an error in the first step (or,
    for the validation split, after the first epoch)."""
    device = next(model.parameters(), image).device  # (a model already on the GPU probes there)
    try:
        with evaluating(model), torch.no_grad():
            out = model(image[None].to(device))
    except (RuntimeError, ValueError, AssertionError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"srblock.fit: the model cannot take {label}'s images ({' x '.join(map(str, image.shape))}: "
            f"{reason}): build it for them (in_chans={image.shape[0]}) or transform the images"
        ) from None
    outputs = out.shape[-1] if isinstance(out, torch.Tensor) else None
    if outputs is not None and outputs != classes:
        raise ValueError(
            f"srblock.fit: the model has {outputs} outputs for {classes} classes: build it with "
            f"num_classes={classes} (timm.create_model(..., num_classes={classes}))"
        )


def check_labels(data: Dataset, label: str, classes: int) -> None:
    """Class indices outside 0..classes-1 are one line now rather than an IndexError (a device
    assert on a GPU) in the first step: those a data set lists (`targets`, `labels`, unless a
    `target_transform` changes them), else its first item's."""
    target = data[0][1]  # what the loader batches: a class index of an integer type
    try:
        whole = not torch.as_tensor(target).is_floating_point() and torch.as_tensor(target).numel() == 1
    except (TypeError, ValueError, RuntimeError):
        whole = False
    if not whole or isinstance(target, bool):
        raise ValueError(
            f"srblock.fit: {label}'s items must be (image, class index), got a {type(target).__name__} "
            f"class ({str(target)[:40]!r}): give whole numbers 0..{classes - 1} (int, or an integer "
            "tensor: labels.long())"
        )
    labels = listed_labels(data)
    if labels is None:  # none listed (or a target_transform changes them): the first item's
        labels = torch.as_tensor([int(target)])
    bad = labels[(labels < 0) | (labels >= classes)]
    if len(bad):
        raise ValueError(
            f"srblock.fit: {label} holds class index {int(bad[0])}, outside 0..{classes - 1} for "
            f"{classes} classes: give classes=[...] or num_classes=N that cover every label, or map "
            "the labels to 0..N-1"
        )


def class_names(train_set: Dataset, classes: list[str] | None, num_classes: int | None) -> list[str]:
    """The run's class names: `classes`, the training set's `.classes`, or 0..num_classes-1; each
    once (two classes of one name would be told apart by nothing a prediction shows)."""
    if classes is not None:
        names = [str(c) for c in classes]
    elif getattr(train_set, "classes", None):
        names = [str(c) for c in train_set.classes]
    elif num_classes is not None:
        names = [str(k) for k in range(num_classes)]
    else:
        raise ValueError(
            "srblock.fit needs the class names: pass classes=[...] or num_classes=N (or a data set with "
            ".classes)"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"srblock.fit: the class names hold {', '.join(map(repr, twice[:3]))} more than once: give "
            "each class a name of its own (classes=[...])"
        )
    return names
