"""ResNets on torchvision's ResNet: the CIFAR ResNet18/34/50 and the ImageNet ResNet50.

Parameter names are torchvision's, so torchvision weights load into the plain models; SE/CBAM
sit in every residual block (after the last BatchNorm, before the residual sum), D before the
classifier, D2D/DB at the end of stages 3 and 4 (overridable).
"""

from functools import partial

import torch
from timm.layers import DropPath, SelectAdaptivePool2d
from torch import nn
from torchvision.models import resnet as tv

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


class BasicBlockAttn(tv.BasicBlock):
    """torchvision's BasicBlock with SE/CBAM and stochastic depth (timm's DropPath) on the residual
    branch: attention after the last BatchNorm, then the branch dropped, before the residual sum."""

    def __init__(self, *args: object, attn: str | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.attn = create_attn_layer(attn, self.bn2.num_features)
        self.drop_path = nn.Identity()  # (set_drop_path: its rate depends on the depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.drop_path(self.attn(self.bn2(self.conv2(out))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BottleneckAttn(tv.Bottleneck):
    """torchvision's Bottleneck with SE/CBAM and stochastic depth on the residual branch."""

    def __init__(self, *args: object, attn: str | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.attn = create_attn_layer(attn, self.bn3.num_features)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.drop_path(self.attn(self.bn3(self.conv3(out))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _block_with_attn(block: type[tv.BasicBlock | tv.Bottleneck], attn: str | None, drop_path: bool) -> object:
    """torchvision's block, or ours where the residual branch holds attention or is dropped."""
    if attn is None and not drop_path:
        return block
    attn_block = BasicBlockAttn if block is tv.BasicBlock else BottleneckAttn
    builder = partial(attn_block, attn=attn)
    builder.expansion = attn_block.expansion  # torchvision reads block.expansion
    return builder


def set_drop_path(stages: list[nn.Module], rate: float) -> None:
    """Stochastic depth as timm's ResNet sets it: the residual blocks' drop rates rise linearly
    with depth from 0 at the first block to `rate` at the last."""
    blocks = [b for stage in stages for b in stage if isinstance(b, (BasicBlockAttn, BottleneckAttn))]
    for index, block in enumerate(blocks):
        block_rate = rate * index / max(len(blocks) - 1, 1)
        block.drop_path = DropPath(block_rate) if block_rate > 0 else nn.Identity()


class ResNet(TimmStages, tv.ResNet):
    """torchvision's ResNet, with a CIFAR stem option, `in_chans`, attention and regularisers.

    Args:
        block, layers: as torchvision's ResNet.
        cifar_stem: 3x3 stride-1 first conv and no max-pool, for 32x32 images.
        attn: None, "se" or "cbam" in every residual block.
        reg: None, "d" (dropout before the classifier), "d2d" (Dropout2d) or "db" (DropBlock)
            at the end of `reg_stages`.
        reg_rate: the regulariser's drop rate (defaults: d 0.2, d2d 0.1, db 0.1).
        drop_block_size: DropBlock's block size.
        widths: output channels of the four stages (before the block expansion); torchvision's
            are (64, 128, 256, 512), narrower ones make small, fast networks.
        replace_stride_with_dilation: as torchvision's (segmentation backbones dilate stages 3, 4).
        drop_rate: timm's dropout before the classifier (0: none, the paper's models).
        drop_path_rate: timm's stochastic depth, the last residual block's drop rate (0: none).
    """

    def __init__(
        self,
        block: type[tv.BasicBlock | tv.Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        cifar_stem: bool = False,
        attn: str | None = None,
        reg: str | None = None,
        reg_rate: float | None = None,
        reg_stages: tuple[int, ...] = DEFAULT_REG_STAGES,
        drop_block_size: int = 7,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        replace_stride_with_dilation: list[bool] | None = None,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        check_attn(attn)
        rate = check_reg(reg, reg_rate)
        if drop_rate and reg == "d":
            raise ValueError(
                "reg='d' is dropout before the classifier, as drop_rate is: give its rate once "
                "(reg_rate, or drop_rate without reg)"
            )
        for key, value in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {value!r}")
        block_fn = _block_with_attn(block, attn, drop_path_rate > 0)
        super().__init__(
            block_fn,
            layers,
            num_classes=max(num_classes, 1),  # (0, no head, is set below: not a Linear with no outputs)
            replace_stride_with_dilation=replace_stride_with_dilation,
        )
        dilate = list(replace_stride_with_dilation or [False] * 3)
        if tuple(widths) != (64, 128, 256, 512):
            self._rebuild_stages(block_fn, layers, tuple(widths), max(num_classes, 1), dilate)
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_chans != 3:
            self.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        # dropout before the classifier: the paper's D regulariser, or timm's drop_rate (--drop)
        head_rate = rate if reg == "d" else drop_rate
        self.drop = nn.Dropout(head_rate) if head_rate else nn.Identity()
        for stage in check_reg_stages(tuple(reg_stages), 4):
            layer = create_stage_reg(reg, rate, drop_block_size)
            if layer is not None:
                getattr(self, f"layer{stage}").add_module("drop", layer)
        if drop_path_rate > 0:
            set_drop_path([self.layer1, self.layer2, self.layer3, self.layer4], drop_path_rate)
        self.cifar_stem, self.in_chans, self.grad_checkpointing = cifar_stem, in_chans, False
        reduction, dilated = 1 if cifar_stem else 4, [False, *dilate]
        self.feature_info = []
        for i in range(4):
            reduction *= 1 if i == 0 or dilated[i] else 2
            self.feature_info.append(
                dict(module=f"layer{i + 1}", num_chs=widths[i] * block.expansion, reduction=reduction)
            )
        # timm's model interface: pooled features, a head that can be reset (0: no head)
        self.num_features = self.head_hidden_size = self.fc.in_features
        self.avgpool = SelectAdaptivePool2d(pool_type="avg", flatten=True)  # no parameters: same state dict
        self.reset_classifier(num_classes) if num_classes == 0 else setattr(self, "num_classes", num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new head for `num_classes` (0: none, the model returns pooled features); `global_pool`
        ("avg", "max", "avgmax", "catavgmax", or "" for none: then the unpooled map) as timm's."""
        if global_pool is not None:
            self.avgpool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.num_classes = num_classes
        features = self.num_features * self.avgpool.feat_mult()
        self.fc = nn.Linear(features, num_classes) if num_classes > 0 else nn.Identity()

    def _rebuild_stages(
        self,
        block_fn: object,
        layers: list[int],
        widths: tuple[int, ...],
        num_classes: int,
        dilate: list[bool],
    ) -> None:
        """Stem, stages and classifier at other widths, with torchvision's own _make_layer (which
        dilates instead of striding where `dilate` says, as torchvision's constructor does)."""
        if len(widths) != 4:
            raise ValueError(f"widths must give the four stages' channels, got {widths}")
        self.inplanes, self.dilation = widths[0], 1
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for i, (width, depth) in enumerate(zip(widths, layers)):
            stage = self._make_layer(
                block_fn, width, depth, stride=1 if i == 0 else 2, dilate=i > 0 and dilate[i - 1]
            )
            setattr(self, f"layer{i + 1}", stage)
        self.fc = nn.Linear(self.inplanes, num_classes)

    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def group_matcher(self, coarse: bool = False) -> dict[str, object]:
        return stage_groups(r"^conv1\.|^bn1\.", "layer", coarse)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():  # stages (SR blocks too) recomputed
            return checkpoint_seq([self.layer1, self.layer2, self.layer3, self.layer4], x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.avgpool(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnet(model_args: dict[str, object], kwargs: dict[str, object]) -> ResNet:
    """A ResNet from a builder's arguments updated by the caller's; the CIFAR ones get the paper's init."""
    model = ResNet(**{**model_args, **kwargs})
    return init_weights(model) if model.cifar_stem else model


@register_model(input_size=(3, 32, 32))
def resnet18_cifar(**kwargs: object) -> ResNet:
    """ResNet18 for 32x32 images (11,220,132 parameters at 100 classes)."""
    model_args = dict(
        block=tv.BasicBlock, layers=[2, 2, 2, 2], cifar_stem=True, num_classes=100, drop_block_size=3
    )
    return _create_resnet(model_args, kwargs)


@register_model(input_size=(3, 32, 32))
def resnet34_cifar(**kwargs: object) -> ResNet:
    """ResNet34 for 32x32 images (21,328,292 parameters at 100 classes)."""
    model_args = dict(
        block=tv.BasicBlock, layers=[3, 4, 6, 3], cifar_stem=True, num_classes=100, drop_block_size=3
    )
    return _create_resnet(model_args, kwargs)


@register_model(input_size=(3, 32, 32))
def resnet50_cifar(**kwargs: object) -> ResNet:
    """ResNet50 for 32x32 images (23,705,252 parameters at 100 classes)."""
    model_args = dict(
        block=tv.Bottleneck, layers=[3, 4, 6, 3], cifar_stem=True, num_classes=100, drop_block_size=3
    )
    return _create_resnet(model_args, kwargs)


@register_model(input_size=(3, 224, 224))
def resnet50(**kwargs: object) -> ResNet:
    """torchvision's ImageNet ResNet50 and its init (25,557,032 parameters at 1000 classes)."""
    model_args = dict(block=tv.Bottleneck, layers=[3, 4, 6, 3], num_classes=1000, drop_block_size=7)
    return _create_resnet(model_args, kwargs)


@register_model(input_size=(3, 32, 32))
def resnet10s_cifar(**kwargs: object) -> ResNet:
    """A small CIFAR ResNet (one BasicBlock per stage, widths 16-128) for the CPU demo and tests."""
    model_args = dict(
        block=tv.BasicBlock,
        layers=[1, 1, 1, 1],
        cifar_stem=True,
        widths=(16, 32, 64, 128),
        num_classes=10,
        drop_block_size=3,
    )
    return _create_resnet(model_args, kwargs)
