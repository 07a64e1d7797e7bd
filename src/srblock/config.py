"""A training run's configuration, one class per task: every run has `TrainConfig`'s fields; a
classification run adds epochs, schedule, attention and regulariser, and the fast path's fields
(`TensorsConfig`: CIFAR, Fashion-MNIST in memory) or the file pipeline's (`FilesConfig`); a
segmentation run counts iterations and has crops and a multi-scale test (`SegmentConfig`).

Each field says what it is where it is declared (`schema.setting`); the SR block's mirror
`SRSpec`'s (`sr_<field>`), and `cfg.sr` is the spec. keys.py checks recipes and `--set`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from .data import DATASETS
from .models.layers import ATTN_LAYERS, REG_LAYERS
from .schema import file_or_true, parse_hw, setting, text_of_bool, text_of_int
from .spec import SRSpec

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# compile: auto compiles (CUDA graphs) on a GPU from this many training steps: compiling ResNet18 takes
# about a minute there, and graphs save about 14 ms a step at batch 128 (benchmarks/RESULTS.md)
AUTO_COMPILE_STEPS = 5_000
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
STEP_ONLY = "does nothing with schedule=cosine: set schedule=step"
MILESTONES = "does nothing unless schedule=step and a milestone falls before the last epoch"
SGD_ONLY = "does nothing with optimizer=adamw: set optimizer=sgd"
NO_WEIGHTS = "does nothing without weights to load: set pretrained (or pretrained_backbone)"


def _val_folder(cfg: Any) -> bool:
    """Whether a folder run's data has its own validation split (then nothing is held out of train/)."""
    from .data.folder import has_val_folder

    return cfg.dataset == "folder" and bool(cfg.data_dir) and has_val_folder(cfg.data_dir)


def sr_key(name: str, **facts: Any) -> Any:
    """A config field mirroring `SRSpec.<name>` (its default and facts, and `facts` about the run's
    other keys, such as `needs`) as the key `sr_<name>`."""
    field = SRSpec.__dataclass_fields__[name]
    return dataclasses.field(default=field.default, metadata={**field.metadata, **facts, "spec": name})


@dataclass
class TrainConfig:
    """The fields of every run; the defaults are the paper's CIFAR-100 recipe."""

    TASK: ClassVar[str] = "any"
    SEGMENTS: ClassVar[bool] = False  # per-pixel labels (the segmentation loop) or one per image

    dataset: str = setting("cifar100", "the data set", choices=tuple(DATASETS))
    model: str = setting("resnet18_cifar", "a zoo model (srblock.list_models()), tv:NAME or timm:NAME")
    sr_stage: int | None = setting(
        None, "SR block after stage M (1-based); null: none", range="[1, inf)", role="sr"
    )
    sr_memory_blocks: int | None = sr_key("memory_blocks")
    sr_hidden: int = sr_key("hidden")
    sr_squeeze_channels: int = sr_key("squeeze_channels")
    sr_act: str | None = sr_key("act")
    batch_size: int = setting(128, "images per step, per process", range="[1, inf)")
    eval_batch_size: int = setting(512, "images per evaluation step", range="[1, inf)")
    lr: float = setting(0.1, "learning rate", range="(0, inf)")
    momentum: float = setting(
        0.9, "SGD's momentum", range="[0, 1)", needs=(lambda c: c.optimizer == "sgd", SGD_ONLY)
    )
    nesterov: bool = setting(False, "Nesterov momentum", needs=(lambda c: c.optimizer == "sgd", SGD_ONLY))
    weight_decay: float = setting(5e-4, "weight decay", range="[0, inf)")
    optimizer: str = setting("sgd", "sgd (the paper's) or adamw (fine-tuning)", choices=("sgd", "adamw"))
    sr_lr_mult: float = sr_key("lr_mult")
    sr_memory_lr_mult: float = sr_key("memory_lr_mult")
    sr_memory_weight_decay: float | None = sr_key("memory_weight_decay")
    sr_temperature: float = sr_key("temperature")
    sr_learn_temperature: bool = sr_key("learn_temperature")
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
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("role") == "execution")

    @property
    def sr(self) -> SRSpec:
        """The run's SR block settings (whether or not it has a block: see sr_stage)."""
        fields = dataclasses.fields(self)
        return SRSpec(**{f.metadata["spec"]: getattr(self, f.name) for f in fields if "spec" in f.metadata})

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: every field (seed included) but how it is run."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.execution_keys()}

    def record(self) -> dict[str, Any]:
        """What result.json records of the config: every field but where the data lay on this machine."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "data_dir"}

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

    def file_transform(self, train: bool) -> Any:
        """The transform of one image file for runs that read files (else None: tensors in memory)."""
        return None


@dataclass
class ClassifyConfig(TrainConfig):
    """Classification: epochs, a step schedule, and the zoo's attention and regularisers."""

    TASK: ClassVar[str] = "classification"

    attn: str | None = setting(None, "SE or CBAM in every block (zoo models)", choices=ATTN_LAYERS[1:])
    reg: str | None = setting(None, "regulariser: d, d2d or db (zoo models)", choices=REG_LAYERS[1:])
    reg_rate: float | None = setting(
        None, "the regulariser's rate (null: its default)", range="[0, 1)",
        needs=(lambda c: c.reg is not None, "does nothing without a regulariser: set reg (d, d2d or db)"),
    )  # fmt: skip
    pretrained: str | None = setting(
        None, "true (timm's / torchvision's weights) or a weights file; SR added after", parse=file_or_true
    )
    epochs: int = setting(200, "epochs", range="[1, inf)")
    schedule: str = setting(
        "step", "step: x gamma at each milestone (the paper's); cosine: to 0 at the end",
        choices=("step", "cosine"),
    )  # fmt: skip
    milestones: list[int] = setting(
        default_factory=lambda: [60, 120, 160], help="epochs at which lr is x gamma", range="[1, inf)",
        needs=(lambda c: c.schedule == "step" and min(c.milestones, default=c.epochs) < c.epochs, MILESTONES),
    )  # fmt: skip
    gamma: float = setting(
        0.2, "the step schedule's factor", range="(0, inf)", needs=(lambda c: c.schedule == "step", STEP_ONLY)
    )
    warmup_epochs: int = setting(
        0, "linear warm-up epochs before the schedule", range="[0, inf)",
        needs=(lambda c: c.warmup_epochs < c.epochs, "leaves no epoch at the full lr: set it below epochs"),
    )  # fmt: skip
    label_smoothing: float = setting(0.0, "label smoothing of the loss", range="[0, 1)")
    sr_memory_init: str = sr_key("memory_init")
    sr_memory_init_scale: float = sr_key(
        "memory_init_scale",
        needs=(lambda c: c.sr_memory_init != "zeros", "does nothing with sr_memory_init=zeros (the paper's "
               "memory starts at zero): set sr_memory_init=normal or prototypes"),
    )  # fmt: skip
    sr_diversity: float = sr_key("diversity")
    sr_bypass_every: int = setting(
        0, "val_acc_bypassed every N epochs; 0: after the last epoch only", range="[0, inf)", role="sr"
    )

    def model_kwargs(self) -> dict[str, Any]:
        return {"attn": self.attn, "reg": self.reg, "reg_rate": self.reg_rate}

    def training_steps(self, train_images: int, world_size: int) -> int:
        return self.epochs * (train_images // (self.batch_size * world_size))

    def weights(self) -> dict[str, Any]:
        return {"pretrained": self.pretrained}

    def folder_parts(self) -> list[str]:
        return [self.model] + [p for p in (self.attn, self.reg) if p]


@dataclass
class TensorsConfig(ClassifyConfig):
    """Classification of a data set held in memory (CIFAR, Fashion-MNIST): pad-crops and flips."""

    TASK: ClassVar[str] = "classification of images held in memory"

    crop_padding: int = setting(4, "padding of the random crop", range="[0, inf)")
    loader: str = setting(
        "fast",
        "fast: data set on the device; dataloader: torch DataLoader + workers",
        choices=("fast", "dataloader"),
    )


@dataclass
class FilesConfig(ClassifyConfig):
    """Classification of image files (ImageNet's and a user's folders), read by DataLoader workers."""

    TASK: ClassVar[str] = "classification of image files"

    image_size: int = setting(
        224, "training crop; validation resizes to image_size / 0.875 and centre-crops", range="[16, 1024]"
    )
    gpu_decode: bool = setting(False, "decode JPEGs on the GPU instead of in the workers")
    in_chans: int = setting(
        3, "every image (grey, RGB, RGBA, palette) is read as 1 or 3 channels", choices=(1, 3)
    )
    augment: str = setting(
        "rrc",
        "rrc: random-resized crop + flip (photos); padcrop: resize, pad-crop + flip",
        choices=("rrc", "padcrop"),
    )
    crop_padding: int = setting(
        4, "padcrop's padding at 32 px, scaled with image_size", range="[0, inf)",
        needs=(lambda c: c.augment == "padcrop", "does nothing with augment=rrc: set augment=padcrop"),
    )  # fmt: skip
    classes: list[str] | None = setting(
        None, "a folder data set's class names (its train/ folders), filled in",
        filled_from="the data folder's train/<class> folders (a run's config.yaml records them)",
    )  # fmt: skip

    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.image_size, self.image_size)

    def num_classes(self) -> int:
        return len(self.classes) if self.classes else DATASETS[self.dataset].num_classes

    def class_names(self) -> list[str] | None:
        return list(self.classes) if self.classes else None

    def file_transform(self, train: bool) -> Any:
        from .data.imagenet import imagenet_transform

        mean, std = DATASETS[self.dataset].stats(self.in_chans)
        return imagenet_transform(
            train, self.image_size, mean, std, self.augment, self.crop_padding, self.flip
        )


@dataclass
class SegmentConfig(TrainConfig):
    """Segmentation (Cityscapes, the seg demo): iterations, poly lr, crops, multi-scale testing."""

    TASK: ClassVar[str] = "segmentation"
    SEGMENTS: ClassVar[bool] = True

    iterations: int = setting(80_000, "training iterations", range="[1, inf)")
    eval_interval: int = setting(8_000, "iterations between evaluations", range="[1, inf)")
    save_interval: int = setting(
        1_000, "last.ckpt every N iterations, so a kill loses at most N", range="[1, inf)"
    )
    poly_power: float = setting(0.9, "power of the polynomial lr decay", range="(0, inf)")
    min_lr: float = setting(1e-4, "the lr the decay ends at", range="[0, inf)")
    crop_size: str = setting(
        "512x1024", "HxW of the training crop; also sizes the SR memory", parse=text_of_int,
        valid=lambda v: parse_hw(v, "crop_size") is not None,
    )  # fmt: skip
    scale_range: list[float] = setting(
        default_factory=lambda: [0.5, 2.0], help="random resize range", range="(0, inf)",
        valid=lambda v: len(v) == 2 and v[0] <= v[1], rule="must be [low, high] with 0 < low <= high",
    )  # fmt: skip
    photometric: bool = setting(True, "photometric distortion in training")
    aux_weight: float = setting(0.4, "weight of the auxiliary head's loss", range="[0, inf)")
    ms_scales: list[float] = setting(
        default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], help="multi-scale test scales",
        range="(0, inf)", valid=bool, rule="must be a non-empty list of positive scales",
    )  # fmt: skip
    ms_flip: bool = setting(True, "flipped images in the multi-scale test")
    pretrained_backbone: str | None = setting(
        None, "a weights file for the backbone (e.g. an ImageNet ResNet50)", parse=file_or_true
    )

    def weights(self) -> dict[str, Any]:
        return {"pretrained_backbone": self.pretrained_backbone}

    def training_steps(self, train_images: int, world_size: int) -> int:
        return self.iterations

    def crop_hw(self) -> tuple[int, int]:
        """crop_size as (height, width)."""
        return parse_hw(self.crop_size, "crop_size")

    def input_size(self) -> tuple[int, int, int]:
        return (DATASETS[self.dataset].input_size[0], *self.crop_hw())


CONFIGS = (TensorsConfig, FilesConfig, SegmentConfig)


def with_seeds(cfg: TrainConfig, seeds: list[int] | None) -> list[TrainConfig]:
    """One config per seed (the config's own seed when none are given), each seed once."""
    return [dataclasses.replace(cfg, seed=s) for s in dict.fromkeys(seeds or [cfg.seed])]
