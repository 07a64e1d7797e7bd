"""`srblock.fit`: the training engine on a model and data sets from Python (this module is fitting.py,
so that importing it never replaces the function `srblock.fit` with a module of that name).

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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

from .data import DATASETS
from .fit_inputs import check_head, check_labels, checked_image, class_names, first_item
from .insert import add_sr, sr_blocks
from .keys import build_config, check_applies, recipe_values, set_value
from .registry import PYTHON_MODEL
from .run_folder import BEST_CKPT, RunFolder
from .spec import SRSpec, as_spec
from .splits import Splits
from .stages import stage_names


class FitResult(NamedTuple):
    folder: Path  # the run folder
    model: nn.Module  # the trained model, with its tested checkpoint loaded (best.ckpt)
    result: dict[str, Any]  # result.json


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


def _held_blocks(model: nn.Module, given: dict[str, Any]) -> dict[str, Any]:
    """The config keys that describe the SR block a model already holds (its stage and shape), so
    the run's config.yaml and folder name say what it trains; keys given that would build another
    block are refused, since fit adds none to such a model. A model with several blocks (or one
    where no stage of srblock's can name it) keeps sr_stage empty: give fit a `name` for it."""
    held = sr_blocks(model)
    if not held:
        return {}
    name, block = held[0]
    where = ", ".join(n for n, _ in held)
    if given.get("sr_stage") is not None:
        raise ValueError(
            f"srblock.fit: sr_stage={given['sr_stage']!r} adds an SR block, but the model already holds "
            f"one ({where}): leave sr_stage out, or give a model without one"
        )
    for field in block.spec.arch():
        key = f"sr_{field}"
        built = sorted({repr(b.spec.arch()[field]) for _, b in held})
        if key in given and built != [repr(given[key])]:
            raise ValueError(
                f"srblock.fit: {key}={given[key]!r} does nothing: the model's SR blocks ({where}) were "
                f"built with {', '.join(built)}; leave it out, or build the model with it"
            )
    values: dict[str, Any] = {"sr_stage": None}
    try:
        stages = stage_names(model)
    except ValueError:  # a network srblock cannot split: its block is still trained, not named
        stages = []
    stage = name.rsplit(".", 1)[0]
    if len(held) == 1 and stage in stages:
        values = {f"sr_{field}": value for field, value in block.spec.arch().items()}
        values["sr_stage"] = stages.index(stage) + 1
    return values


def _given_spec(sr: SRSpec | None) -> dict[str, Any]:
    """The sr_<field> keys an SRSpec passed to fit sets: those it changes from the paper's."""
    if sr is None:
        return {}
    default = SRSpec().keys()
    return {k: v for k, v in as_spec(sr, "srblock.fit").keys().items() if v != default[k]}


BUILT_BEFORE = (
    "srblock.fit: the model was built before the call, so it starts from whatever weights its builder "
    "drew, not the run's seed's: pass a function that builds it (e.g. lambda: timm.create_model(...)) "
    "for a call that repeats bit for bit"
)


def fit(
    model: nn.Module | Callable[[], nn.Module],
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
    devices: int | str | list[int] = 1,
    quiet: bool = False,
    **overrides: Any,
) -> FitResult:
    """Trains `model` on `train_set` with a recipe's optimiser, schedule and loop; the checkpoint
    best on `val_set` is tested on `test_set` (without `test_set`, the last epoch's on `val_set`).
    `model` is a model, or a function that builds one: fit calls it under the run's seed, so the
    same call repeats bit for bit (a model built before the call starts from whatever weights its
    builder drew). `overrides` are recipe keys (epochs=10, lr=1e-3, seed=1...); sr_stage (with
    `sr`, an SRSpec, or its sr_<field> keys) adds an SR block to a model that has none (a model
    that holds one trains it as it is, its stage and shape recorded). A second call with the same
    arguments and data resumes (or skips) the run; other data are refused."""
    from .train.jobs import Job, run_jobs  # the training stack, only when training

    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(
            f"srblock.fit takes the model itself, or a function that builds it, got {model!r}: e.g. "
            "srblock.create_model(name), or lambda: timm.create_model(name, num_classes=N)"
        )
    if val_set is None and test_set is None:
        raise ValueError("srblock.fit needs val_set (or test_set) to choose and test a checkpoint")
    if devices not in (1, "1") and not (isinstance(devices, (list, tuple)) and len(devices) == 1):
        raise ValueError(  # Fabric would start the caller's script again, once per further device
            f"srblock.fit trains in this process, on one device, not devices={devices!r}: give one (1, or "
            "[k] for device k); several GPUs are `srblock train`'s, which starts one process per device"
        )
    splits = (("train_set", train_set), ("val_set", val_set), ("test_set", test_set))
    items = {}
    for label, split in splits:
        if split is not None and hasattr(split, "__len__") and len(split) == 0:
            raise ValueError(f"srblock.fit: {label} is empty: give it images (or leave it out)")
        if split is not None:
            items[label] = first_item(split, label)
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"srblock.fit: out={str(out)!r} is a file: give a folder for the run folders")
    for key, value in overrides.items():
        why = FIT_DECIDES.get(key)
        if why and value not in (None, False):
            raise ValueError(f"srblock.fit: {key}={value!r} does nothing here: {why}")
    values: dict[str, Any] = {}
    spec_keys = as_spec(sr, "srblock.fit").keys() if sr is not None else {}
    for key, value in {**recipe_values(recipe), **spec_keys, **overrides}.items():
        set_value(values, key, value, f"srblock.fit({key}=...)")
    built_before = isinstance(model, nn.Module)
    if not built_before:  # its initial weights are the run's seed's
        torch.manual_seed(values.get("seed", 0))
        model = model()
        if not isinstance(model, nn.Module):
            raise TypeError(f"srblock.fit: the function given as the model returned {model!r}, not a model")
    values.update(_held_blocks(model, {**_given_spec(sr), **overrides}))
    label = name or type(model).__name__
    values.update(dataset="folder", model=f"{PYTHON_MODEL}{label}", data_dir=None, pretrained=None)
    values["classes"] = class_names(train_set, classes, num_classes)
    image = checked_image(items["train_set"][0])
    values["in_chans"], values["image_size"] = int(image.shape[0]), int(image.shape[-1])
    cfg = build_config(values, "srblock.fit")
    check_applies(
        cfg,
        {**spec_keys, **overrides},
        "srblock.fit",
        has_sr=cfg.sr_stage is not None or bool(sr_blocks(model)),
    )
    for label, (first, _) in items.items():  # each split: the evaluated ones failed after an epoch
        check_head(model, checked_image(first), len(values["classes"]), label)
    for label, split in splits:
        if split is not None:
            check_labels(split, label, len(values["classes"]))
    if cfg.sr_stage is not None and not sr_blocks(model):
        add_sr(model, cfg.sr_stage, cfg.sr, input_size=tuple(image.shape))
    group = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(str(recipe)).stem)
    folder = RunFolder.of(out, group, cfg)
    if built_before and not folder.started():  # (a run it resumes started from its own weights)
        warnings.warn(BUILT_BEFORE, UserWarning, stacklevel=2)
    tested = "test" if test_set is not None else "val"
    evaluation = val_set if val_set is not None else []
    data = Splits(
        DATASETS["folder"], train_set, evaluation, test_set if test_set is not None else val_set, tested
    )
    (outcome,) = run_jobs(
        [Job(cfg, folder.path, model=model, data=data)],
        resume=True,
        quiet=quiet,
        accelerator=accelerator,
        devices=devices,
    )
    if not outcome.trained:  # the same call again: the run's tested weights, without training
        folder.load_weights(model, cfg, BEST_CKPT)
    return FitResult(folder.path, model, outcome.result)
