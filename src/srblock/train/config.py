"""A training run's configuration: a recipe (YAML) plus `--set key=value` overrides, checked."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..recipes import load_yaml


@dataclass
class TrainConfig:
    """Every field a recipe may set; the defaults are the paper's CIFAR-100 recipe (SPEC section 3)."""

    dataset: str = "cifar100"
    model: str = "resnet18_cifar"
    attn: str | None = None
    reg: str | None = None
    reg_rate: float | None = None
    sr_stage: int | None = None
    sr_blocks: int = 4
    sr_hidden: int = 8
    sr_squeeze: int = 1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [60, 120, 160])
    gamma: float = 0.2
    val_fraction: float = 0.1
    crop_padding: int = 4
    flip: bool = True
    seed: int = 0
    precision: str = "auto"  # auto: bf16-mixed on a GPU, 32-true on the CPU
    compile: bool = False
    channels_last: bool = True
    loader: str = "fast"  # fast: data set on the device; dataloader: torch DataLoader + workers
    num_workers: int = 2
    eval_batch_size: int = 512
    limit_train: int | None = None  # use only the first N training images (smoke runs)
    limit_test: int | None = None  # use only the first N test images
    # ImageNet (file data sets): training crop; validation resizes to image_size / 0.875 and centre-crops
    image_size: int = 224
    gpu_decode: bool = False  # decode JPEGs on the GPU (torchvision.io.decode_jpeg) instead of in workers
    # segmentation (Cityscapes, the seg demo): iterations, poly lr, crops, multi-scale testing
    iterations: int = 80_000
    eval_interval: int = 8_000
    save_interval: int = 1_000  # last.ckpt every N iterations, so a kill loses at most N
    poly_power: float = 0.9
    min_lr: float = 1e-4
    crop_size: str = "512x1024"  # HxW of the training crop; also sizes the SR memory
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    photometric: bool = True
    aux_weight: float = 0.4
    ms_scales: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    ms_flip: bool = True

    def crop_hw(self) -> tuple[int, int]:
        """crop_size as (height, width)."""
        return parse_hw(self.crop_size, "crop_size")

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: everything (seed included)."""
        return dataclasses.asdict(self)


def parse_hw(text: str, key: str) -> tuple[int, int]:
    """`HxW` (or one number for a square) as (height, width), or a one-line ValueError."""
    parts = str(text).lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{key} must be HxW of positive ints, e.g. 512x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TYPES = typing.get_type_hints(TrainConfig)
POSITIVE = {"epochs", "batch_size", "eval_batch_size", "iterations", "eval_interval", "save_interval", "image_size",
            "sr_blocks", "sr_hidden", "sr_squeeze", "lr"}
CHOICES = {"loader": ("fast", "dataloader"), "precision": ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")}


def _describe(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return f"{_describe(args[0])} or null"
    if typing.get_origin(tp) is list:
        return f"a list of {_describe(args[0])}s"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _check(key: str, value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or None where it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _check(key, value, next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return None
        items = [_check(key, v, typing.get_args(tp)[0]) for v in value]
        return None if any(i is None for i in items) else items
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    return None


def set_value(values: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Checks one key and its value and stores it, or raises a one-line ValueError."""
    if key not in KEYS:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(KEYS)}")
    if key == "crop_size" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `crop_size: 512` in a YAML file: a square crop
    checked = _check(key, value, _TYPES[key])
    if checked is None and value is not None:
        raise ValueError(f"{source}: {key} takes {_describe(_TYPES[key])}, got {value!r}")
    if checked is None and not _is_optional(_TYPES[key]):
        raise ValueError(f"{source}: {key} takes {_describe(_TYPES[key])}, not null")
    if key == "crop_size":
        parse_hw(checked, f"{source}: crop_size")
    if key in POSITIVE and checked is not None and checked <= 0:
        raise ValueError(f"{source}: {key} must be positive, got {checked!r}")
    if key == "scale_range" and (len(checked) != 2 or not 0 < checked[0] <= checked[1]):
        raise ValueError(f"{source}: scale_range must be [low, high] with 0 < low <= high, got {checked!r}")
    if key == "ms_scales" and (not checked or min(checked) <= 0):
        raise ValueError(f"{source}: ms_scales must be a non-empty list of positive scales, got {checked!r}")
    if key in CHOICES and checked not in CHOICES[key]:
        raise ValueError(f"{source}: {key} must be one of {', '.join(CHOICES[key])}, got {checked!r}")
    values[key] = checked


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def parse_set(items: list[str]) -> dict[str, Any]:
    """`key=value` strings as a dict; values are read as YAML (0.1, true, null, [60, 120])."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write key=value, e.g. --set lr=0.05")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            value = text
        if key.strip() == "crop_size":
            value = text  # HxW as written: YAML would read 0x100 as a hexadecimal number
        set_value(values, key.strip(), value, f"--set {item}")
    return values


def recipe_values(recipe: str) -> dict[str, Any]:
    """The checked fields of a recipe (shipped name or YAML path)."""
    data = load_yaml(recipe)
    if "runs" in data:
        raise ValueError(f"{recipe} is a sweep, not a recipe: run it with `srblock sweep {recipe}`")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key != "description":
            set_value(values, key, value, f"recipe {recipe}")
    return values


def make_config(recipe: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A recipe with overrides applied on top (both already checked by set_value)."""
    return TrainConfig(**{**recipe_values(recipe), **(overrides or {})})
