"""The paper's model zoo; importing it registers every model with `srblock.create_model`. The
registry's questions are asked here (as in `torchvision.models`), so that they are answered with
the zoo registered."""

from ..registry import build_registered, list_models, model_arguments, model_facts, register_model
from .init import init_weights
from .layers import ATTN_LAYERS, REG_LAYERS, create_attn_layer
from .resnet import ResNet, resnet10s_cifar, resnet18_cifar, resnet34_cifar, resnet50, resnet50_cifar
from .segmentation import SegmentationModel, deeplabv3_r50_d8, fcn_r50_d8, fcn_resnet10s
from .vgg import VGG, vgg16_bn_cifar, vgg19_bn_cifar

__all__ = [
    "ATTN_LAYERS",
    "REG_LAYERS",
    "ResNet",
    "SegmentationModel",
    "VGG",
    "create_attn_layer",
    "deeplabv3_r50_d8",
    "fcn_r50_d8",
    "fcn_resnet10s",
    "build_registered",
    "init_weights",
    "list_models",
    "model_arguments",
    "model_facts",
    "register_model",
    "resnet10s_cifar",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50",
    "resnet50_cifar",
    "vgg16_bn_cifar",
    "vgg19_bn_cifar",
]
