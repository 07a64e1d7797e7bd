"""A training run's configuration: a recipe (YAML) plus `--set key=value` overrides, checked.

Which fields a run has depends on its data set's task. Every run has `TrainConfig`'s; a
classification run adds epochs, the step schedule, attention and regulariser, and either the
fast path's fields (`TensorsConfig`: CIFAR and Fashion-MNIST, held in memory) or the image
pipeline's (`FilesConfig`: ImageNet's folders); a segmentation run counts iterations and has its
crops and multi-scale test (`SegmentConfig`). A run's config.yaml lists its own fields only.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from torch import nn

from .data import DATASETS
from .recipes import load_yaml
from .registry import PYTHON_MODEL, create_model, default_sr_blocks, is_segmentation, min_train_batch


@dataclass
class TrainConfig:
    """The fields of every run; the defaults are the paper's CIFAR-100 recipe."""

    TASK: ClassVar[str] = "any"
    # how to run rather than what: a run may resume with others, and its config.yaml then records them
    EXECUTION: ClassVar[tuple[str, ...]] = ("precision", "compile", "compile_mode", "num_workers", "data_dir")

    dataset: str = "cifar100"
    model: str = "resnet18_cifar"
    sr_stage: int | None = None
    sr_blocks: int | None = None  # P; None: the model's own (the paper's for the segmentation models), else 4
    sr_hidden: int = 8
    sr_squeeze: int = 1
    batch_size: int = 128  # per process
    eval_batch_size: int = 512
    lr: float = 0.1
    momentum: float = 0.9  # SGD's
    nesterov: bool = False
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # sgd (the paper's) or adamw (fine-tuning)
    sr_lr_mult: float = 1.0  # the SR blocks' lr over the rest's
    sr_memory_lr_mult: float = 1.0  # the memory's lr over the SR blocks' (docs/memory.md)
    sr_memory_weight_decay: float | None = None  # the memory's weight decay; None: weight_decay
    sr_temperature: float = 1.0  # softmax temperature of the block's choice (1: the paper's)
    sr_temperature_learned: bool = False  # learn it (as log T), from sr_temperature on
    val_fraction: float = 0.1
    flip: bool = True
    seed: int = 0
    precision: str = "auto"  # auto: bf16-mixed on a GPU, 32-true on the CPU
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode; reduce-overhead replays CUDA graphs (GPU)
    channels_last: bool = True
    num_workers: int = 2
    limit_train: int | None = None  # use only the first N training images (smoke runs)
    limit_test: int | None = None  # use only the first N test images
    data_dir: str | None = None  # where the data set was read (absolute)

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: every field (seed included) but how it is run."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.EXECUTION}

    def record(self) -> dict[str, Any]:
        """What result.json records of the config: every field but where the data lay on this machine."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "data_dir"}

    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the run trains on, which sizes its SR memory."""
        return DATASETS[self.dataset].input_size

    def num_classes(self) -> int:
        """The model's outputs: the data set's classes."""
        return DATASETS[self.dataset].num_classes

    def model_kwargs(self) -> dict[str, Any]:
        """What this task passes to the model's builder beside classes and channels."""
        return {}

    def weights(self) -> dict[str, Any]:
        """Where the model's starting weights come from (the builder's arguments), if not its init."""
        return {}


@dataclass
class ClassifyConfig(TrainConfig):
    """Classification: epochs, a step schedule, and the zoo's attention and regularisers."""

    TASK: ClassVar[str] = "classification"

    attn: str | None = None
    reg: str | None = None
    reg_rate: float | None = None
    pretrained: str | None = None  # true (timm's / torchvision's weights) or a weights file; SR added after
    epochs: int = 200
    schedule: str = "step"  # step: x gamma at each milestone (the paper's); cosine: to 0 at the end
    milestones: list[int] = field(default_factory=lambda: [60, 120, 160])
    gamma: float = 0.2
    warmup_epochs: int = 0  # linear warm-up before the schedule
    label_smoothing: float = 0.0
    sr_memory_init: str = "zeros"  # zeros (the paper's), normal, prototypes (docs/memory.md)
    sr_memory_init_scale: float = 0.3  # normal / prototypes: memory RMS over the block input's RMS
    sr_diversity: float = 0.0  # weight of the image-block mutual-information term (0: none)
    sr_bypass_every: int = 0  # val_acc_bypassed every N epochs; 0: after the last epoch only

    def model_kwargs(self) -> dict[str, Any]:
        return {"attn": self.attn, "reg": self.reg, "reg_rate": self.reg_rate}

    def weights(self) -> dict[str, Any]:
        return {"pretrained": self.pretrained}


@dataclass
class TensorsConfig(ClassifyConfig):
    """Classification of a data set held in memory (CIFAR, Fashion-MNIST): pad-crops and flips."""

    TASK: ClassVar[str] = "classification of images held in memory"

    crop_padding: int = 4
    loader: str = "fast"  # fast: data set on the device; dataloader: torch DataLoader + workers


@dataclass
class FilesConfig(ClassifyConfig):
    """Classification of image files (ImageNet's folders), read by DataLoader workers."""

    TASK: ClassVar[str] = "classification of image files"

    image_size: int = 224  # training crop; validation resizes to image_size / 0.875 and centre-crops
    gpu_decode: bool = False  # decode JPEGs on the GPU (torchvision.io.decode_jpeg) instead of in workers
    in_chans: int = 3  # every image (grey, RGB, RGBA, palette) is read as 1 or 3 channels
    augment: str = "rrc"  # rrc: random-resized crop + flip (photos); padcrop: resize, pad-crop + flip
    crop_padding: int = 4  # padcrop's padding at 32 px, scaled with image_size
    classes: list[str] | None = None  # a folder data set's class names (its train/ folders), filled in

    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.image_size, self.image_size)

    def num_classes(self) -> int:
        return len(self.classes) if self.classes else DATASETS[self.dataset].num_classes


@dataclass
class SegmentConfig(TrainConfig):
    """Segmentation (Cityscapes, the seg demo): iterations, poly lr, crops, multi-scale testing."""

    TASK: ClassVar[str] = "segmentation"

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
    pretrained_backbone: str | None = None  # a weights file for the backbone (e.g. an ImageNet ResNet50)

    def weights(self) -> dict[str, Any]:
        return {"pretrained_backbone": self.pretrained_backbone}

    def crop_hw(self) -> tuple[int, int]:
        """crop_size as (height, width)."""
        return parse_hw(self.crop_size, "crop_size")

    def input_size(self) -> tuple[int, int, int]:
        return (DATASETS[self.dataset].input_size[0], *self.crop_hw())


CONFIGS = (TensorsConfig, FilesConfig, SegmentConfig)


def config_class(dataset: str) -> type[TrainConfig]:
    """The config class of a data set's runs: by its task, and for classification by where its images lie."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    if info.task == "segment":
        return SegmentConfig
    return TensorsConfig if info.in_memory else FilesConfig


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


KEYS = tuple(dict.fromkeys(k for cls in CONFIGS for k in _fields(cls)))  # every key any run may set
_TYPES = {k: v for cls in CONFIGS for k, v in typing.get_type_hints(cls).items() if k in KEYS}
# every numeric key's range, as an interval (a list's every item): one validation layer for all
RANGES = {
    **dict.fromkeys(
        ("sr_stage", "sr_blocks", "sr_hidden", "sr_squeeze", "batch_size", "eval_batch_size"), "[1, inf)"
    ),
    **dict.fromkeys(("epochs", "milestones", "iterations", "eval_interval", "save_interval"), "[1, inf)"),
    **dict.fromkeys(("limit_train", "limit_test"), "[1, inf)"),
    "image_size": "[16, 1024]",
    **dict.fromkeys(("lr", "gamma", "poly_power", "scale_range", "ms_scales"), "(0, inf)"),
    **dict.fromkeys(("weight_decay", "min_lr", "aux_weight", "crop_padding", "num_workers"), "[0, inf)"),
    **dict.fromkeys(("momentum", "val_fraction", "reg_rate", "label_smoothing"), "[0, 1)"),
    **dict.fromkeys(
        ("warmup_epochs", "sr_bypass_every", "sr_diversity", "sr_memory_weight_decay"), "[0, inf)"
    ),
    **dict.fromkeys(
        ("sr_lr_mult", "sr_memory_lr_mult", "sr_temperature", "sr_memory_init_scale"), "(0, inf)"
    ),
    "seed": "[0, 4294967295]",  # what numpy's generators take
}
CHOICES = {
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "loader": ("fast", "dataloader"),
    "augment": ("rrc", "padcrop"),
    "optimizer": ("sgd", "adamw"),
    "sr_memory_init": ("zeros", "normal", "prototypes"),
    "schedule": ("step", "cosine"),
    "in_chans": (1, 3),
    "precision": ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"),
    "dataset": tuple(DATASETS),
}


def key_groups() -> dict[str, list[str]]:
    """The keys by the runs they apply to (for --help): every run's, then each task's own."""
    common = _fields(TrainConfig)
    groups = {"every run": common, "classification": [k for k in _fields(ClassifyConfig) if k not in common]}
    for cls in CONFIGS:
        groups[cls.TASK] = [k for k in _fields(cls) if k not in _fields(cls.__mro__[1])]
    return groups


def parse_hw(text: str, key: str) -> tuple[int, int]:
    """`HxW` (or one number for a square) as (height, width), or a one-line ValueError."""
    parts = str(text).lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{key} must be HxW of positive ints, e.g. 512x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


def _describe(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return f"{_describe(args[0])} or null"
    if typing.get_origin(tp) is list:
        return f"a list of {_describe(args[0])}s"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _check(value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or None where it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _check(value, next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return None
        items = [_check(v, typing.get_args(tp)[0]) for v in value]
        return None if any(i is None for i in items) else items
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            return None
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    return None


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _check_range(key: str, value: Any, source: str) -> None:
    """A one-line ValueError where a number (or a list's item) lies outside its key's RANGES interval."""
    interval = RANGES.get(key)
    if interval is None or value is None:
        return
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    for item in value if isinstance(value, list) else [value]:
        above = item > low if interval[0] == "(" else item >= low
        below = item < high if interval[-1] == ")" else item <= high
        if not (above and below):
            raise ValueError(f"{source}: {key} must be in {interval}, got {value!r}")


def set_value(values: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Checks one key and its value and stores it, or raises a one-line ValueError."""
    if key not in KEYS:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(KEYS)}")
    if key == "crop_size" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `crop_size: 512` in a YAML file: a square crop
    if key == "pretrained" and isinstance(value, bool):
        value = "true" if value else None  # true: the published weights; false: none
    elif key in ("pretrained", "pretrained_backbone") and isinstance(value, str) and value != "true":
        value = str(Path(value).expanduser().resolve())  # a file: found from any working folder
    checked = _check(value, _TYPES[key])
    if checked is None and value is not None:
        raise ValueError(f"{source}: {key} takes {_describe(_TYPES[key])}, got {value!r}")
    if checked is None and not _is_optional(_TYPES[key]):
        raise ValueError(f"{source}: {key} takes {_describe(_TYPES[key])}, not null")
    if key == "crop_size":
        parse_hw(checked, f"{source}: crop_size")
    _check_range(key, checked, source)
    if key == "scale_range" and (len(checked) != 2 or not 0 < checked[0] <= checked[1]):
        raise ValueError(f"{source}: scale_range must be [low, high] with 0 < low <= high, got {checked!r}")
    if key == "ms_scales" and (not checked or min(checked) <= 0):
        raise ValueError(f"{source}: ms_scales must be a non-empty list of positive scales, got {checked!r}")
    if key in CHOICES and checked not in CHOICES[key]:
        raise ValueError(f"{source}: {key} must be one of {', '.join(CHOICES[key])}, got {checked!r}")
    values[key] = checked


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


def build_config(values: dict[str, Any], source: str, *, other_tasks: str = "refuse") -> TrainConfig:
    """The config of checked `values`, of the class its data set's task needs, with the model's P
    filled in where an SR block is asked for without one.

    `other_tasks="drop"` leaves out keys of other tasks instead of refusing them: config.yaml
    files written before configs were split by task list every key of every task.
    """
    dataset = values.get("dataset", TrainConfig.dataset)
    cls = config_class(dataset)
    own = set(_fields(cls))
    foreign = [k for k in values if k not in own]
    if foreign and other_tasks == "refuse":
        raise ValueError(
            f"{source}: {', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to "
            f"{dataset} runs "
            f"({cls.TASK}); their keys: {', '.join(_fields(cls))}"
        )
    values = {k: v for k, v in values.items() if k in own}
    model, batch = values.get("model", cls.model), values.get("batch_size", cls.batch_size)
    if is_segmentation(model) != (cls is SegmentConfig):
        kind = "a segmentation model" if is_segmentation(model) else "a classification model"
        raise ValueError(
            f"{source}: {model} is {kind}, but {dataset} runs are {cls.TASK}: choose a model for that task "
            "(srblock.list_models())"
        )
    if batch < min_train_batch(model):
        raise ValueError(
            f"{source}: batch_size={batch} cannot train {model} (per process): its image-pooling "
            f"BatchNorm sees one value per channel; set batch_size={min_train_batch(model)} or more"
        )
    if values.get("sr_memory_init", "zeros") != "zeros" and not DATASETS[dataset].in_memory:
        raise ValueError(
            f"{source}: sr_memory_init={values['sr_memory_init']} starts the memory from images held in "
            f"memory (CIFAR, Fashion-MNIST); {dataset} runs read files: leave sr_memory_init at zeros"
        )
    if dataset == "folder" and values.get("classes") is None and values.get("data_dir"):
        from .data.folder import folder_classes  # the classes are the data's: read once, then recorded

        values["classes"] = list(folder_classes(values["data_dir"]))
    if values.get("sr_stage") is None:
        values["sr_blocks"] = None  # no SR block: no P
    elif values.get("sr_blocks") is None:
        values["sr_blocks"] = default_sr_blocks(values.get("model", cls.model))
    return cls(**values)


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


def make_config(
    recipe: str, overrides: dict[str, Any] | None = None, source: str | None = None
) -> TrainConfig:
    """A recipe with overrides applied on top (both already checked by set_value); `source` names
    where the overrides come from in an error (default: the recipe)."""
    values = {**recipe_values(recipe), **(overrides or {})}
    return build_config(values, source or f"recipe {recipe} with its overrides")


def with_seeds(cfg: TrainConfig, seeds: list[int] | None) -> list[TrainConfig]:
    """One config per seed (the config's own seed when none are given)."""
    return [dataclasses.replace(cfg, seed=s) for s in (seeds or [cfg.seed])]


def build_model(cfg: TrainConfig, pretrained: bool = False) -> nn.Module:
    """The run's model, with its SR block sized for the images it is trained on; with `pretrained`,
    the starting weights the config names (a run's own checkpoints replace them on resume)."""
    if cfg.model.startswith(PYTHON_MODEL):
        raise ValueError(
            f"{cfg.model} is a model given to srblock.fit in Python: build it again and load the run's "
            "best.ckpt into it (torch.load(path, weights_only=True)['model'])"
        )
    if cfg.num_classes() == 0:
        raise ValueError(
            f"{cfg.dataset} runs need a data folder: pass --data DIR holding train/<class>/<image>"
        )
    input_size = cfg.input_size()
    return create_model(
        cfg.model,
        num_classes=cfg.num_classes(),
        in_chans=input_size[0],
        sr_stage=cfg.sr_stage,
        sr_blocks=cfg.sr_blocks,
        sr_hidden=cfg.sr_hidden,
        sr_squeeze=cfg.sr_squeeze,
        sr_temperature=cfg.sr_temperature,
        sr_learn_temperature=cfg.sr_temperature_learned,
        input_size=input_size,
        **cfg.model_kwargs(),
        **(cfg.weights() if pretrained else {}),
    )
