"""Segmentation models: FCN and DeepLabv3 on torchvision's dilated ResNet50, and a tiny FCN.

Built from torchvision's own parts (dilated ResNet50 at output stride 8, FCNHead, DeepLabHead
with ASPP rates 12/24/36 beside its 1x1 branch, IntermediateLayerGetter), so parameter names
are torchvision's and its weights load into the plain models. Differences from torchvision's
`fcn_resnet50` / `deeplabv3_resnet50`: dropout 0.1 in every head (torchvision's ASPP has 0.5),
and the auxiliary head is skipped in eval mode (it only feeds the training loss). SR goes after
stage 2 (SPEC section 2): `create_model("deeplabv3_r50_d8", sr_stage=2)` gives P = 2 by default
and `fcn_r50_d8` P = 3; the memory has the training crop's feature size (512x1024 -> 64x128).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from ..registry import register_model
from .init import init_weights
from .resnet import ResNet

CITYSCAPES_CROP = (3, 512, 1024)


class SegmentationModel(nn.Module):
    """backbone -> head (+ auxiliary head on an earlier stage while training), upsampled to the input.

    Returns torchvision's dict: ``out`` always, ``aux`` in training mode when there is an
    auxiliary head (its loss weight lives in the training recipe, `aux_weight`).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None,
                 default_input_size: tuple[int, int, int], sr_default_blocks: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = head
        self.aux_classifier = aux_head
        self.default_input_size = default_input_size
        self.sr_default_blocks = sr_default_blocks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        features = self.backbone(x)
        result = OrderedDict(out=F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear", align_corners=False))
        if self.aux_classifier is not None and self.training:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return result


def _set_dropout(module: nn.Module, p: float) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
    return module


def _dilated_r50(in_chans: int) -> ResNet:
    """torchvision's ResNet50 with stages 3 and 4 dilated (output stride 8), as its segmentation models."""
    return ResNet(tv.Bottleneck, [3, 4, 6, 3], in_chans=in_chans, replace_stride_with_dilation=[False, True, True])


def _r50_d8(head: str, num_classes: int, in_chans: int, aux: bool, head_dropout: float, sr_default_blocks: int) -> SegmentationModel:
    backbone = IntermediateLayerGetter(
        _dilated_r50(in_chans), return_layers={"layer4": "out", **({"layer3": "aux"} if aux else {})}
    )
    classifier = FCNHead(2048, num_classes) if head == "fcn" else DeepLabHead(2048, num_classes)
    aux_head = FCNHead(1024, num_classes) if aux else None
    model = SegmentationModel(backbone, classifier, aux_head, CITYSCAPES_CROP, sr_default_blocks)
    return _set_dropout(model, head_dropout)


@register_model
def fcn_r50_d8(num_classes: int = 19, in_chans: int = 3, aux: bool = True, head_dropout: float = 0.1) -> SegmentationModel:
    """FCN on a dilated ResNet50 (output stride 8), auxiliary FCN head on layer3; SR default P = 3."""
    return _r50_d8("fcn", num_classes, in_chans, aux, head_dropout, sr_default_blocks=3)


@register_model
def deeplabv3_r50_d8(num_classes: int = 19, in_chans: int = 3, aux: bool = True, head_dropout: float = 0.1) -> SegmentationModel:
    """DeepLabv3 (ASPP 1, 12, 24, 36 + image pooling) on a dilated ResNet50 (output stride 8),
    auxiliary FCN head on layer3; SR default P = 2."""
    return _r50_d8("deeplabv3", num_classes, in_chans, aux, head_dropout, sr_default_blocks=2)


@register_model
def fcn_resnet10s(num_classes: int = 11, in_chans: int = 1, aux: bool = True, head_dropout: float = 0.1) -> SegmentationModel:
    """A tiny FCN for the CPU segmentation demo: resnet10s_cifar's stages (stride-1 stem, so
    output stride 8 without dilation), FCN head on layer4, auxiliary head on layer3; 64x64 input."""
    net = ResNet(tv.BasicBlock, [1, 1, 1, 1], in_chans=in_chans, cifar_stem=True, widths=(16, 32, 64, 128))
    backbone = IntermediateLayerGetter(net, return_layers={"layer4": "out", **({"layer3": "aux"} if aux else {})})
    model = SegmentationModel(
        backbone, FCNHead(128, num_classes), FCNHead(64, num_classes) if aux else None, (in_chans, 64, 64), 4
    )
    return init_weights(_set_dropout(model, head_dropout))
