"""VGG16-BN and VGG19-BN for 32x32 images, as the paper uses them.

`features` holds the five conv stages, each an ``nn.Sequential`` ending in its max-pool, so
"after stage M" (the paper's M = 1..5) is the output of ``features[M-1]``. The classifier is
512 -> 4096 -> 4096 -> classes with dropout, as in the paper: dropout in the classifier only.
"""

from collections import OrderedDict

import torch
from timm.layers import SelectAdaptivePool2d
from torch import nn

from ..registry import register_model
from .init import init_weights
from .layers import (
    DEFAULT_REG_STAGES,
    check_attn,
    check_reg,
    check_reg_stages,
    create_attn_layer,
    create_stage_reg,
)
from .timm_interface import TimmStages, checkpoint_seq, stage_groups

CFGS = {
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _stage(in_chs: int, widths: list[int], attn: str | None) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, width in enumerate(widths, start=1):
        layers[f"conv{i}"] = nn.Conv2d(in_chs, width, kernel_size=3, padding=1)
        layers[f"bn{i}"] = nn.BatchNorm2d(width)
        layers[f"act{i}"] = nn.ReLU(inplace=True)
        in_chs = width
    if attn is not None:
        layers["attn"] = create_attn_layer(attn, in_chs)
    layers["pool"] = nn.MaxPool2d(kernel_size=2, stride=2)
    return nn.Sequential(layers)


class VGG(TimmStages, nn.Module):
    """VGG-BN with a 512-4096-4096 classifier.

    Args:
        widths: output channels of each conv, per stage.
        attn: None, "se" or "cbam" at the end of every stage (before its max-pool).
        reg: None, "d2d" or "db" at the end of `reg_stages`. The classifier always has dropout
            (`drop_rate`), so "d" is refused rather than silently meaning nothing.
    """

    def __init__(
        self,
        widths: list[list[int]],
        num_classes: int = 100,
        in_chans: int = 3,
        attn: str | None = None,
        reg: str | None = None,
        reg_rate: float | None = None,
        reg_stages: tuple[int, ...] = DEFAULT_REG_STAGES,
        drop_block_size: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        check_attn(attn)
        if reg == "d":
            raise ValueError(
                "VGG always has dropout in its classifier (drop_rate, 0.5 by default); "
                "reg='d' adds nothing: choose reg None, 'd2d' or 'db'"
            )
        rate = check_reg(reg, reg_rate)
        stages, in_chs = [], in_chans
        for stage_widths in widths:
            stages.append(_stage(in_chs, stage_widths, attn))
            in_chs = stage_widths[-1]
        self.features = nn.Sequential(*stages)
        self.stage_names = tuple(f"features.{k}" for k in range(len(stages)))
        for stage in check_reg_stages(tuple(reg_stages), len(widths)):
            layer = create_stage_reg(reg, rate, drop_block_size)
            if layer is not None:
                self.features[stage - 1].add_module("drop", layer)
        # 1x1 already at 32x32; other sizes still work
        self.avgpool = SelectAdaptivePool2d(pool_type="avg", flatten=True)
        self.classifier = nn.Sequential(
            nn.Linear(in_chs, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity(),
        )
        # timm's model interface: the features are the last stage's channels, the head's hidden
        # layer is the classifier's 4096 (pre_logits), and the last linear layer can be reset
        self.num_classes, self.num_features, self.head_hidden_size = num_classes, in_chs, 4096
        self.in_chans, self.grad_checkpointing = in_chans, False  # (timm's model interface)
        self.head_layers = len(self.classifier)
        self.feature_info = [
            dict(module=f"features.{i}", num_chs=w[-1], reduction=2 ** (i + 1)) for i, w in enumerate(widths)
        ]

    def group_matcher(self, coarse: bool = False) -> dict[str, object]:
        """A group per stage, fine or coarse, as timm's VGG (a stage's layers are not numbered blocks)."""
        return stage_groups(r"^features\.0\.(?:conv1|bn1)\.", r"features\.", coarse=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.grad_checkpointing and not torch.jit.is_scripting()
        ):  # each stage (its SR block too) recomputed
            return checkpoint_seq(self.features, x)
        return self.features(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new last linear layer for `num_classes` (0: none, the model returns the 4096 pre-logits);
        `global_pool` "" (no pooling: the model returns the last stage's map) only without a head,
        as the classifier's hidden layers take pooled features."""
        if global_pool is not None:
            if global_pool == "" and num_classes > 0:
                raise ValueError("VGG's classifier takes pooled features: global_pool='' needs num_classes=0")
            self.avgpool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
            if self.avgpool.feat_mult() != 1:
                raise ValueError(
                    f"VGG's classifier takes {self.num_features} features: use avg or max pooling"
                )
        self.num_classes = num_classes
        self.classifier[-1] = (
            nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        )

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)
        if self.avgpool.is_identity():  # global_pool "": the unpooled map (no head; reset_classifier says so)
            return x
        for i, layer in enumerate(self.classifier):  # (a loop: TorchScript cannot slice a Sequential)
            if not pre_logits or i < self.head_layers - 1:
                x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_vgg(model_args: dict[str, object], kwargs: dict[str, object]) -> VGG:
    """A VGG with the paper's init: Gaussian convs, Kaiming-uniform linears."""
    return init_weights(VGG(**{**model_args, **kwargs}), conv="normal")


@register_model(input_size=(3, 32, 32))
def vgg16_bn_cifar(**kwargs: object) -> VGG:
    """VGG16-BN for 32x32 images."""
    return _create_vgg(dict(widths=CFGS["vgg16"]), kwargs)


@register_model(input_size=(3, 32, 32))
def vgg19_bn_cifar(**kwargs: object) -> VGG:
    """VGG19-BN for 32x32 images."""
    return _create_vgg(dict(widths=CFGS["vgg19"]), kwargs)
