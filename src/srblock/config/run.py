"""The fields of every run, whatever its task (`TrainConfig`): data set, model, SR block, optimiser,
seed and how it runs. The SR block is one field, `sr`, an `SRSpec`; where a run's keys are
written flat (recipes, `--set`, config.yaml) its fields are the keys `sr_<field>`: `key_fields`
and `keys` are that view, `keys.build_config` the way back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from ..data import DATASETS
from ..schema import setting, text_of_bool
from ..spec import SRSpec

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# compile: auto compiles (CUDA graphs) on a GPU from this many training steps: compiling ResNet18 takes
# about a minute there, and graphs save about 14 ms a step at batch 128 (benchmarks/RESULTS.md)
AUTO_COMPILE_STEPS = 5_000
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
TRACKERS = ("csv", "tensorboard", "mlflow", "wandb")  # `loggers` (train/tracking.py); csv: metrics.csv only
SGD_ONLY = "does nothing with optimizer=adamw: set optimizer=sgd"
NO_WEIGHTS = "does nothing without weights to load: set pretrained (or pretrained_backbone)"


def _val_folder(cfg: Any) -> bool:
    """Whether a folder run's data has its own validation split (then nothing is held out of train/)."""
    from ..data.folder import has_val_folder

    return cfg.dataset == "folder" and bool(cfg.data_dir) and has_val_folder(cfg.data_dir)


SPEC_FIELDS = {f.name: f for f in dataclasses.fields(SRSpec)}
MAX_CHANGES_NAME = 60  # characters of changed keys in a folder name; longer: a hash of them


def _as_text(value: Any) -> str:
    """A key's value as a folder name spells it: 0.05, true, 60_120 (a list), null."""
    if isinstance(value, (list, tuple)):
        return "_".join(map(_as_text, value))
    if value is None or isinstance(value, bool):
        return str(value).lower() if value is not None else "null"
    return f"{value:g}" if isinstance(value, float) else str(value)


def in_spec(field: dataclasses.Field) -> bool:
    """Whether a key's field is one of SRSpec's (the key sr_<field>) rather than the config's own."""
    return SPEC_FIELDS.get(field.name) is field


@dataclass
class TrainConfig:
    """The fields of every run; the defaults are the paper's CIFAR-100 recipe."""

    TASK: ClassVar[str] = "any"
    SEGMENTS: ClassVar[bool] = False  # per-pixel labels (the segmentation loop) or one per image
    # the SRSpec fields this task's loop reads (its keys sr_<field>); the others stay at the default
    SR_FIELDS: ClassVar[tuple[str, ...]] = (
        "memory_blocks", "hidden", "squeeze_channels", "act", "lr_mult", "memory_lr_mult",
        "memory_weight_decay", "temperature", "learn_temperature",
    )  # fmt: skip

    dataset: str = setting("cifar100", "the data set", choices=tuple(DATASETS))
    model: str = setting("resnet18_cifar", "a zoo model (srblock.list_models()), tv:NAME or timm:NAME")
    sr_stage: int | None = setting(
        None, "SR block after stage M (1-based); null: none", range="[1, inf)", role="sr"
    )
    sr: SRSpec = dataclasses.field(default_factory=SRSpec)  # the block (whether or not sr_stage adds one)
    batch_size: int = setting(128, "images per step, per process", range="[1, inf)")
    eval_batch_size: int = setting(512, "images per evaluation step", range="[1, inf)")
    lr: float = setting(0.1, "learning rate", range="(0, inf)")
    momentum: float = setting(
        0.9, "SGD's momentum", range="[0, 1)", needs=(lambda c: c.optimizer == "sgd", SGD_ONLY)
    )
    nesterov: bool = setting(False, "Nesterov momentum", needs=(lambda c: c.optimizer == "sgd", SGD_ONLY))
    weight_decay: float = setting(5e-4, "weight decay", range="[0, inf)")
    optimizer: str = setting("sgd", "sgd (the paper's) or adamw (fine-tuning)", choices=("sgd", "adamw"))
    val_fraction: float = setting(
        0.1, "share of the training set held out for validation", range="[0, 1)",
        needs=(lambda c: not _val_folder(c), "does nothing: the data folder has its own validation split"),
    )  # fmt: skip
    flip: bool = setting(True, "random horizontal flips in training")
    seed: int = setting(0, "decides init, data order, augmentation and split", range="[0, 4294967295]")
    precision: str = setting(
        "auto", "auto: bf16-mixed on a GPU, 32-true on the CPU", choices=PRECISIONS, role="execution"
    )
    compile: str = setting(
        "auto", "torch.compile the model: auto (on a GPU, runs long enough to repay it), true or false",
        choices=("auto", "true", "false"), parse=text_of_bool, role="execution",
    )  # fmt: skip
    compile_mode: str = setting(
        "default", "torch.compile's mode; reduce-overhead replays CUDA graphs", choices=COMPILE_MODES,
        role="execution", needs=(lambda c: c.compile != "false", "does nothing with compile=false"),
    )  # fmt: skip
    channels_last: bool = setting(True, "channels_last memory format")
    loggers: list[str] = setting(
        default_factory=lambda: ["tensorboard"], role="execution", choices=TRACKERS,
        help="where the numbers go besides metrics.csv (csv: that alone): tensorboard, mlflow, wandb",
    )  # fmt: skip
    log_every: int = setting(
        50, "the training loss and lr to the trackers every N steps", range="[1, inf)", role="execution"
    )
    num_workers: int = setting(
        2, "DataLoader workers", range="[0, inf)", role="execution",
        needs=(lambda c: c.num_workers == 0 or getattr(c, "loader", "dataloader") != "fast",
               "does nothing with loader=fast (the images on the device, no workers): set loader=dataloader"),
    )  # fmt: skip
    limit_train: int | None = setting(None, "only the first N training images (smoke runs)", range="[1, inf)")
    limit_test: int | None = setting(None, "only the first N test images", range="[1, inf)")
    data_dir: str | None = setting(None, "where the data set was read (absolute)", role="execution")
    pretrained_partial: bool = setting(
        False, "load a weights file of another architecture anyway: what fits loads, the rest stays new",
        needs=(lambda c: any(c.weights().values()), NO_WEIGHTS),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not isinstance(self.sr, SRSpec):
            raise TypeError(f"{type(self).__name__}: sr is an SRSpec, got {self.sr!r}")
        default = SRSpec()
        unread = [
            f"sr_{name}" for name in SPEC_FIELDS
            if name not in self.SR_FIELDS and getattr(self.sr, name) != getattr(default, name)
        ]  # fmt: skip
        if unread:
            raise ValueError(f"{', '.join(unread)} does nothing in {self.TASK} runs: leave it out")

    @classmethod
    def key_fields(cls) -> dict[str, dataclasses.Field]:
        """Every key of this task's runs as written flat (recipes, --set, config.yaml), with the field
        that declares it: the config's own, and for `sr` the SRSpec fields the task reads, as sr_<field>."""
        keys: dict[str, dataclasses.Field] = {}
        for field in dataclasses.fields(cls):
            if field.name == "sr":
                keys.update({f"sr_{name}": SPEC_FIELDS[name] for name in cls.SR_FIELDS})
            else:
                keys[field.name] = field
        return keys

    @classmethod
    def key_types(cls) -> dict[str, Any]:
        """The type of each of `key_fields`' keys."""
        own, spec = typing.get_type_hints(cls), typing.get_type_hints(SRSpec)
        return {k: spec[f.name] if in_spec(f) else own[k] for k, f in cls.key_fields().items()}

    def keys(self) -> dict[str, Any]:
        """The config as flat keys (config.yaml's, the trackers' hyperparameters), in `key_fields`' order."""
        values = dataclasses.asdict(self)
        return {k: values["sr"][f.name] if in_spec(f) else values[k] for k, f in self.key_fields().items()}

    def compile_plan(self, device_type: str, steps: int) -> str | None:
        """The torch.compile mode the run trains with, or None for eager: `compile: auto` compiles
        with CUDA graphs (reduce-overhead, unless compile_mode names another) on a CUDA device when
        the run has at least AUTO_COMPILE_STEPS training steps; eager on the CPU and for short runs."""
        if self.compile == "false" or (
            self.compile == "auto" and (device_type != "cuda" or steps < AUTO_COMPILE_STEPS)
        ):
            return None
        if self.compile == "auto" and self.compile_mode == "default":
            return "reduce-overhead"
        return self.compile_mode

    def training_steps(self, train_images: int, world_size: int) -> int:
        """Optimiser steps of the whole run (full batches per process, drop_last)."""
        return 0

    @classmethod
    def execution_keys(cls) -> tuple[str, ...]:
        """How a run is run rather than what it computes: may change on resume, never compared."""
        return tuple(k for k, f in cls.key_fields().items() if f.metadata.get("role") == "execution")

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: every key (seed included) but how it is run."""
        return {k: v for k, v in self.keys().items() if k not in self.execution_keys()}

    def record(self) -> dict[str, Any]:
        """What result.json records of the config: every key but where the data lay on this machine."""
        return {k: v for k, v in self.keys().items() if k != "data_dir"}

    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the run trains on, which sizes its SR memory."""
        return DATASETS[self.dataset].input_size

    def num_classes(self) -> int:
        """The model's outputs: the data set's classes."""
        return DATASETS[self.dataset].num_classes

    def class_names(self) -> list[str] | None:
        """The class names the config records (a folder's), else None: the data set's own."""
        return None

    def in_memory(self) -> bool:
        """Whether the run's images are held in memory as tensors (CIFAR, Fashion-MNIST)."""
        return DATASETS[self.dataset].in_memory

    def model_kwargs(self) -> dict[str, Any]:
        """What this task passes to the model's builder beside classes and channels."""
        return {}

    def weights(self) -> dict[str, Any]:
        """Where the model's starting weights come from (the builder's arguments), if not its init."""
        return {}

    def folder_parts(self) -> list[str]:
        """What names the configuration's folder besides the SR block: the model (and its layers)."""
        return [self.model]

    def folder_name(self, changes: dict[str, Any] | None = None) -> str:
        """The configuration's folder name: model (and its layers), SR placement, how the memory
        trains where it is not the paper's way (the `slug` of SRSpec's fields, in their order), then
        the keys a --set changed from the recipe (`changes`, keys.set_changes: `-lr0.05`), or a
        short hash of them where they would make the name long."""
        parts = self.folder_parts()
        if self.sr_stage is not None:
            spec, default = self.sr, SRSpec()
            parts.append(f"sr{self.sr_stage}p{spec.memory_blocks}h{spec.hidden}")
            for field in dataclasses.fields(SRSpec):
                short, value = field.metadata.get("slug"), getattr(spec, field.name)
                if short and value != getattr(default, field.name):
                    parts.append(f"{short}{value}" if not isinstance(value, bool) else short)
        changed = [f"{key}{_as_text(value)}" for key, value in (changes or {}).items()]
        if len("-".join(changed)) > MAX_CHANGES_NAME:
            digest = hashlib.sha1(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()
            changed = [f"set{digest[:8]}"]  # (config.yaml says which keys)
        return "-".join(str(p).replace("/", "_").replace(":", "_").replace(" ", "") for p in parts + changed)

    def file_transform(self, train: bool) -> Any:
        """The transform of one image file for runs that read files (else None: tensors in memory)."""
        return None
