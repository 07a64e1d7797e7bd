"""Forwards of the SR block to time against each other (benchmarks/gpu_check.py, `block_profile`):
the reference it replaced, the library's lean one, and candidates for what comes next. Each is
a function (block, x) -> output computing Eq. 1 with the block's own parameters; `use(name)`
makes every SqueezeRemember run it.

- reference: the forward before the lean one (tests/reference_block.py).
- lean: the library's (`SqueezeRemember.forward`): eager, the recall and the add as one addmm;
  under torch.compile, elementwise expressions that inductor fuses.
- addmm: the library's eager forward under torch.compile too (the squeeze conv and one addmm).
- mm_squeeze: lean, with the 1x1 squeeze conv as a matrix product on a view of the map (no
  convolution kernel for one output channel).
- mm_squeeze_fp32_fc: that, with the two small linear layers in float32 outside autocast (no
  casts of their weights per call).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srblock import SqueezeRemember  # noqa: E402
from tests.reference_block import reference_forward  # noqa: E402

LEAN = SqueezeRemember.forward


def _squeeze_mm(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    """The 1x1 squeeze conv as a matrix product: B x C_s x H x W, without a convolution kernel."""
    batch, channels, height, width = x.shape
    weight = block.squeeze.weight.view(block.squeeze_channels, channels)
    bias = block.squeeze.bias
    if not torch.is_autocast_enabled(x.device.type):
        weight, bias = weight.to(x.dtype), bias.to(x.dtype)
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        rows = torch.addmm(bias, x.permute(0, 2, 3, 1).reshape(-1, channels), weight.t())
        return rows.view(batch, height, width, -1).permute(0, 3, 1, 2)
    out = torch.baddbmm(bias.view(1, -1, 1), weight.expand(batch, -1, -1), x.reshape(batch, channels, -1))
    return out.view(batch, -1, height, width)


def _weights(block: SqueezeRemember, squeezed: torch.Tensor, fp32_fc: bool) -> torch.Tensor:
    if squeezed.shape[-2:] != block.size:
        squeezed = F.adaptive_avg_pool2d(squeezed, block.size)
    flat = squeezed.flatten(1)
    if not fp32_fc:
        logits = block.fc2(block.act(block.fc1(flat)))
    else:
        with torch.autocast(flat.device.type, enabled=False):
            logits = block.fc2(block.act(block.fc1(flat.float())))
    if block.log_temperature is not None:
        logits = logits * torch.exp(-block.log_temperature)
    elif block.temperature != 1.0:
        logits = logits / block.temperature
    return F.softmax(logits, dim=-1, dtype=torch.float32)


def addmm(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, block.squeeze(x), fp32_fc=False))


def mm_squeeze(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, _squeeze_mm(block, x), fp32_fc=False))


def mm_squeeze_fp32_fc(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, _squeeze_mm(block, x), fp32_fc=True))


VARIANTS: dict[str, Callable[[SqueezeRemember, torch.Tensor], torch.Tensor]] = {
    "reference": reference_forward,
    "lean": LEAN,
    "addmm": addmm,
    "mm_squeeze": mm_squeeze,
    "mm_squeeze_fp32_fc": mm_squeeze_fp32_fc,
}


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Inside, every SqueezeRemember runs the forward `name`."""
    SqueezeRemember.forward = VARIANTS[name]
    try:
        yield
    finally:
        SqueezeRemember.forward = LEAN
