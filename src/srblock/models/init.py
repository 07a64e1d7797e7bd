"""The paper's initialisation (its appendix VII-A), which leaves every SR block as it is."""

from __future__ import annotations

import math

from torch import nn

from ..block import SqueezeRemember


def _outside_sr(model: nn.Module) -> list[nn.Module]:
    """Every module of `model` that is not an SR block nor inside one: the block owns its init."""
    inside: set[int] = set()
    for module in model.modules():
        if isinstance(module, SqueezeRemember):
            inside.update(id(m) for m in module.modules())
    return [m for m in model.modules() if id(m) not in inside]


def init_weights(model: nn.Module, conv: str = "kaiming_uniform") -> nn.Module:
    """Kaiming-uniform (He, fan_in, ReLU gain) convs and linears, zero biases, BatchNorm 1 and 0.

    `conv="normal"` gives the convs N(0, sqrt(2 / (k*k*out_channels))) instead, the Gaussian
    the paper uses for VGG's convs. SR blocks keep their own init and their zero memory.
    """
    if conv not in ("kaiming_uniform", "normal"):
        raise ValueError(f"unknown conv init {conv!r}; choose 'kaiming_uniform' or 'normal'")
    for m in _outside_sr(model):
        if isinstance(m, nn.Conv2d) and conv == "normal":
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            continue
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model
