"""The SR block's forward as it was before the lean one (srblock 283b03e), kept as the reference
the lean forward is tested against (and timed against, in benchmarks/gpu_check.py): Eq. 1 written
plainly, the recall a matrix product of its own, then the add."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srblock import SqueezeRemember


def reference_weights(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    squeezed = block.squeeze(x)
    if tuple(squeezed.shape[-2:]) != block.size:
        squeezed = F.adaptive_avg_pool2d(squeezed, block.size)
    logits = block.fc2(block.act(block.fc1(squeezed.flatten(1)))).float()
    if block.log_temperature is not None:
        logits = logits / block.log_temperature.float().exp()
    elif block.temperature != 1.0:
        logits = logits / block.temperature
    return logits.softmax(dim=-1)


def reference_forward(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    weights = reference_weights(block, x)
    batch, (height, width) = weights.shape[0], block.size
    weights = weights.to(block.memory.dtype)
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last:
        mix = weights @ block.memory.permute(0, 2, 3, 1).reshape(block.memory_blocks, -1)
        mix = mix.view(batch, height, width, block.channels).permute(0, 3, 1, 2)
    else:
        mix = (weights @ block.memory.flatten(1)).view(batch, block.channels, height, width)
    if tuple(x.shape[-2:]) != block.size:
        mix = F.interpolate(mix, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return x + mix.to(x.dtype)
