"""Segmentation models: FCN and DeepLabv3 on torchvision's dilated ResNet50, and a tiny FCN.

Built from torchvision's own parts (dilated ResNet50 at output stride 8, FCNHead, DeepLabHead
with ASPP rates 12/24/36 beside its 1x1 branch, IntermediateLayerGetter), so parameter names
are torchvision's and its weights load into the plain models. Differences from torchvision's
`fcn_resnet50` / `deeplabv3_resnet50`: dropout 0.1 in every head (torchvision's ASPP has 0.5),
and the auxiliary head is skipped in eval mode (it only feeds the training loss). SR goes after
stage 2, as in the paper: `create_model("deeplabv3_r50_d8", sr_stage=2)` gives P = 2 by default
and `fcn_r50_d8` P = 3; the memory has the training crop's feature size (512x1024 -> 64x128).
"""

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
HEADS = ("fcn", "deeplabv3")
BACKBONES = ("r50_d8", "resnet10s")


def main_output(out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """A model's main prediction: a segmentation model's "out" (torchvision's dict), a classifier's output."""
    return out["out"] if isinstance(out, dict) else out


def _dilated_r50(in_chans: int) -> ResNet:
    """torchvision's ResNet50 with stages 3 and 4 dilated (output stride 8), as its segmentation models."""
    return ResNet(
        tv.Bottleneck, [3, 4, 6, 3], in_chans=in_chans, replace_stride_with_dilation=[False, True, True]
    )


def _resnet10s(in_chans: int) -> ResNet:
    """resnet10s_cifar's stages: a stride-1 stem, so output stride 8 without dilation."""
    return ResNet(tv.BasicBlock, [1, 1, 1, 1], in_chans=in_chans, cifar_stem=True, widths=(16, 32, 64, 128))


class SegmentationModel(nn.Module):
    """backbone -> head (+ auxiliary FCN head on stage 3 while training), upsampled to the input.

    Returns torchvision's dict: ``out`` always, ``aux`` in training mode when there is an
    auxiliary head (its loss weight lives in the training recipe, `aux_weight`).

    Args:
        head: "fcn" (torchvision's FCNHead) or "deeplabv3" (its DeepLabHead: ASPP 1, 12, 24, 36
            and image pooling).
        backbone: "r50_d8" (ResNet50 dilated to output stride 8) or "resnet10s" (the demo's).
        num_classes, in_chans: classes to predict and channels of the input.
        aux: the auxiliary head on stage 3 (training only).
        head_dropout: dropout in every head (0.1, where torchvision's ASPP has 0.5).
    """

    def __init__(
        self,
        head: str = "fcn",
        backbone: str = "r50_d8",
        num_classes: int = 19,
        in_chans: int = 3,
        aux: bool = True,
        head_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if head not in HEADS or backbone not in BACKBONES:
            raise ValueError(
                f"head must be one of {HEADS} and backbone one of {BACKBONES}, got {head!r}, {backbone!r}"
            )
        net = _dilated_r50(in_chans) if backbone == "r50_d8" else _resnet10s(in_chans)
        aux_channels, channels = (info["num_chs"] for info in net.feature_info[2:])  # stages 3 and 4
        self.backbone = IntermediateLayerGetter(
            net, return_layers={"layer4": "out", **({"layer3": "aux"} if aux else {})}
        )
        self.classifier = (
            FCNHead(channels, num_classes) if head == "fcn" else DeepLabHead(channels, num_classes)
        )
        self.aux_classifier = FCNHead(aux_channels, num_classes) if aux else None
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = head_dropout

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = [x.shape[-2], x.shape[-1]]
        features = self.backbone(x)
        # (a dict filled key by key, as torchvision's models do: TorchScript takes no dict(out=...))
        result: dict[str, torch.Tensor] = OrderedDict()
        result["out"] = F.interpolate(
            self.classifier(features["out"]), size=size, mode="bilinear", align_corners=False
        )
        if self.aux_classifier is not None and self.training:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return result


@register_model(segments=True, sr_default_blocks=3, input_size=CITYSCAPES_CROP)
def fcn_r50_d8(**kwargs: object) -> SegmentationModel:
    """FCN on a dilated ResNet50 (output stride 8), auxiliary FCN head on layer3; SR default P = 3."""
    return SegmentationModel(**{**dict(head="fcn", backbone="r50_d8"), **kwargs})


@register_model(segments=True, sr_default_blocks=2, min_train_batch=2, input_size=CITYSCAPES_CROP)
def deeplabv3_r50_d8(**kwargs: object) -> SegmentationModel:
    """DeepLabv3 (ASPP 1, 12, 24, 36 + image pooling) on a dilated ResNet50 (output stride 8),
    auxiliary FCN head on layer3; SR default P = 2."""
    return SegmentationModel(**{**dict(head="deeplabv3", backbone="r50_d8"), **kwargs})


@register_model(segments=True, sr_default_blocks=4, input_size=(1, 64, 64))
def fcn_resnet10s(**kwargs: object) -> SegmentationModel:
    """A tiny FCN for the CPU segmentation demo: resnet10s_cifar's stages (stride-1 stem, so
    output stride 8 without dilation), FCN head on layer4, auxiliary head on layer3; 64x64 input."""
    model_args = dict(head="fcn", backbone="resnet10s", num_classes=11, in_chans=1)
    return init_weights(SegmentationModel(**{**model_args, **kwargs}))
