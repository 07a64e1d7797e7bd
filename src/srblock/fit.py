"""`srblock.fit`: the training engine on a model and data sets from Python.

    import srblock
    model = timm.create_model("resnet18", pretrained=True, num_classes=37)
    run = srblock.fit(model, train_set, val_set, recipe="finetune", out="runs", sr_stage=3, epochs=10)
    run.folder, run.model, run.result["test_acc"]

`train_set` and `val_set` (and `test_set`) are map-style `torch.utils.data.Dataset`s of
(image tensor, class index), already transformed as the model wants them (their random
transforms are seeded per item and epoch, so a resumed run sees the same batches). The run
folder, checkpoints, resume, metrics and result.json are those of `srblock train`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

from .data import DATASETS
from .insert import add_sr, evaluating, sr_blocks
from .keys import build_config, check_applies, recipe_values, set_value
from .registry import PYTHON_MODEL
from .run_model import load_weights
from .runs import BEST_CKPT, run_dir
from .spec import SRSpec, as_spec
from .splits import Splits


class FitResult(NamedTuple):
    folder: Path  # the run folder
    model: nn.Module  # the trained model, with the checkpoint best on validation loaded
    result: dict[str, Any]  # result.json


def _checked_image(image: object) -> torch.Tensor:
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


def _check_head(model: nn.Module, image: torch.Tensor, classes: int) -> None:
    """One forward of the first image: a head with another number of outputs than classes is one
    line here rather than a loss shape error in the first step."""
    with evaluating(model), torch.no_grad():
        out = model(image[None])
    outputs = out.shape[-1] if isinstance(out, torch.Tensor) else None
    if outputs is not None and outputs != classes:
        raise ValueError(
            f"srblock.fit: the model has {outputs} outputs for {classes} classes: build it with "
            f"num_classes={classes} (timm.create_model(..., num_classes={classes}))"
        )


# keys of a recipe that fit's own arguments decide, with what decides them
_DATA = "your data sets (and their own transforms) decide it"
_WEIGHTS = "load weights into the model before (e.g. srblock.create_model(name, pretrained=FILE))"
FIT_DECIDES = {
    **dict.fromkeys(
        ("dataset", "data_dir", "val_fraction", "augment", "crop_padding", "flip", "gpu_decode"), _DATA
    ),
    **dict.fromkeys(("in_chans", "image_size"), "it is read from your images"),
    **dict.fromkeys(("pretrained", "pretrained_partial"), _WEIGHTS),
}


def _classes(train_set: Dataset, classes: list[str] | None, num_classes: int | None) -> list[str]:
    if classes is not None:
        return [str(c) for c in classes]
    if getattr(train_set, "classes", None):
        return [str(c) for c in train_set.classes]
    if num_classes is not None:
        return [str(k) for k in range(num_classes)]
    raise ValueError(
        "srblock.fit needs the class names: pass classes=[...] or num_classes=N (or a data set with .classes)"
    )


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None = None,
    *,
    test_set: Dataset | None = None,
    recipe: str = "finetune",
    out: str | Path = "runs",
    name: str | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    sr: SRSpec | None = None,
    accelerator: str = "auto",
    devices: int | str = 1,
    quiet: bool = False,
    **overrides: Any,
) -> FitResult:
    """Trains `model` on `train_set` with a recipe's optimiser, schedule and loop; the checkpoint
    best on `val_set` is tested on `test_set` (else on `val_set`). `overrides` are recipe keys
    (epochs=10, lr=1e-3, seed=1...); sr_stage (with `sr`, an SRSpec, or its sr_<field> keys) adds
    an SR block to a model that has none. A second call with the same arguments resumes (or skips) the run."""
    from .train.jobs import Job, run_jobs  # the training stack, only when training

    if not isinstance(model, nn.Module):
        raise TypeError(
            f"srblock.fit takes the model itself, got {model!r}: build it first, e.g. "
            "srblock.create_model(name) or timm.create_model(name)"
        )
    if val_set is None and test_set is None:
        raise ValueError("srblock.fit needs val_set (or test_set) to choose and test a checkpoint")
    for label, split in (("train_set", train_set), ("val_set", val_set), ("test_set", test_set)):
        if split is not None and len(split) == 0:
            raise ValueError(f"srblock.fit: {label} is empty: give it images (or leave it out)")
    for key, value in overrides.items():
        why = FIT_DECIDES.get(key)
        if why and value not in (None, False):
            raise ValueError(f"srblock.fit: {key}={value!r} does nothing here: {why}")
    values: dict[str, Any] = {}
    spec_keys = as_spec(sr, "srblock.fit").keys() if sr is not None else {}
    for key, value in {**recipe_values(recipe), **spec_keys, **overrides}.items():
        set_value(values, key, value, f"srblock.fit({key}=...)")
    label = name or type(model).__name__
    values.update(dataset="folder", model=f"{PYTHON_MODEL}{label}", data_dir=None, pretrained=None)
    values["classes"] = _classes(train_set, classes, num_classes)
    image = _checked_image(train_set[0][0])
    values["in_chans"], values["image_size"] = int(image.shape[0]), int(image.shape[-1])
    cfg = build_config(values, "srblock.fit")
    check_applies(
        cfg,
        {**spec_keys, **overrides},
        "srblock.fit",
        has_sr=cfg.sr_stage is not None or bool(sr_blocks(model)),
    )
    _check_head(model, image, len(values["classes"]))
    if cfg.sr_stage is not None and not sr_blocks(model):
        add_sr(model, cfg.sr_stage, cfg.sr, input_size=tuple(image.shape))
    group = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(str(recipe)).stem)
    folder = run_dir(Path(out), group, cfg)
    tested = "test" if test_set is not None else "val"
    evaluation = val_set if val_set is not None else []
    data = Splits(
        DATASETS["folder"], train_set, evaluation, test_set if test_set is not None else val_set, tested
    )
    (outcome,) = run_jobs(
        [Job(cfg, folder, model=model, data=data)],
        resume=True,
        quiet=quiet,
        accelerator=accelerator,
        devices=devices,
    )
    if not outcome.trained:  # the same call again: the run's tested weights, without training
        load_weights(model, folder / BEST_CKPT, cfg)
    return FitResult(folder, model, outcome.result)
