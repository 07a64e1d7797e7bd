"""Classification runs: epochs, a step schedule, the zoo's attention and regularisers
(`ClassifyConfig`), and where the images lie: in memory, read by the fast path (`TensorsConfig`:
CIFAR, Fashion-MNIST), or as files read by DataLoader workers (`FilesConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..data import DATASETS
from ..layer_choices import ATTN_LAYERS, REG_LAYERS
from ..schema import file_or_true, setting
from .run import TrainConfig


def crop_padding() -> Any:
    """`crop_padding`, declared once for both classes that take it (a name, one meaning): the
    random pad-crop's padding. Images in memory are always pad-cropped; files only with
    augment=padcrop, at image_size scaled from 32 px."""
    return setting(
        4, "the random pad-crop's padding, at 32 px (files: with augment=padcrop, scaled with image_size)",
        range="[0, inf)",
        needs=(lambda c: getattr(c, "augment", "padcrop") == "padcrop",
               "does nothing with augment=rrc: set augment=padcrop"),
    )  # fmt: skip


STEP_ONLY = "does nothing with schedule=cosine: set schedule=step"
MILESTONES = "does nothing unless schedule=step and a milestone falls before the last epoch"


@dataclass
class ClassifyConfig(TrainConfig):
    """Classification: epochs, a step schedule, and the zoo's attention and regularisers."""

    TASK: ClassVar[str] = "classification"
    SR_FIELDS: ClassVar[tuple[str, ...]] = (
        *TrainConfig.SR_FIELDS,
        "memory_init",
        "memory_init_scale",
        "diversity",
    )  # the memory's start and the diversity term: the classification loop's

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

    crop_padding: int = crop_padding()
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
    crop_padding: int = crop_padding()
    classes: list[str] | None = setting(
        None, "a folder data set's class names (its train/ folders), filled in",
        filled_from="the data (a folder's train/<class> folders, the other data sets' own names)",
    )  # fmt: skip

    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.image_size, self.image_size)

    def num_classes(self) -> int:
        return len(self.classes) if self.classes else DATASETS[self.dataset].num_classes

    def class_names(self) -> list[str] | None:
        return list(self.classes) if self.classes else None

    def file_transform(self, train: bool) -> Any:
        from ..data.imagenet import imagenet_transform

        mean, std = DATASETS[self.dataset].stats(self.in_chans)
        return imagenet_transform(
            train, self.image_size, mean, std, self.augment, self.crop_padding, self.flip
        )
