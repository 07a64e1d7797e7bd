"""The Squeeze-and-Remember block (arXiv 2410.00823; docs/method.md): squeeze, remember, add."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer
from torch import nn

ActLayer = str | type[nn.Module] | None


def _size2(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """A feature-map size as (H, W), whether given as one int or two."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    return size  # type: ignore[return-value]


def _positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SqueezeRemember(nn.Module):
    """Adds to a feature map a softmax mix of learned memory blocks, chosen by the map itself.

    ``X_hat = X + sum_p w_p(X) M_p`` where ``w = softmax(fc2(act(fc1(flatten(squeeze(X))))))``.
    The memory starts at zero, so a fresh block is the identity and can be put into a trained
    network without changing what it computes.

    Args:
        channels: C, channels of the incoming feature map.
        size: (H, W) of the memory, the feature-map size seen in training.
        memory_blocks: P, number of memory blocks.
        hidden: h, hidden neurons of the two-layer FC net.
        squeeze_channels: C_s, channels of the 1x1 squeeze conv.
        act: activation between the two linear layers: a name timm knows (``"relu"``,
            ``"gelu"``...), a module class, or ``None`` for none.
        temperature: T of ``softmax(logits / T)`` (1: the paper's); below 1 the FC net's choice
            is sharper, so memory blocks get more different gradients.
        learn_temperature: T is learned (as log T, a parameter) from ``temperature`` on.

    ``diversity`` (an attribute, 0 by default: the paper's block) > 0 makes a training forward
    leave ``aux_loss``: ``diversity`` times the negative mutual information between images and
    memory blocks over the batch (normalised by log P), for the loss to add; minimising it makes
    each image choose decisively and different images choose differently.

    Feature maps of another size than ``size`` (beyond the paper; docs/method.md): the squeezed
    map is adaptive-average-pooled to ``size`` before the FC net and the recalled memory is
    resized bilinearly to the incoming size.
    """

    def __init__(
        self,
        channels: int,
        size: int | tuple[int, int],
        memory_blocks: int = 4,
        hidden: int = 8,
        squeeze_channels: int = 1,
        act: ActLayer = "relu",
        temperature: float = 1.0,
        learn_temperature: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.channels = _positive("channels", channels)
        self.size = _size2(size)
        self.memory_blocks = _positive("memory_blocks", memory_blocks)
        self.hidden = _positive("hidden", hidden)
        self.squeeze_channels = _positive("squeeze_channels", squeeze_channels)
        height, width = self.size

        self.squeeze = nn.Conv2d(channels, squeeze_channels, kernel_size=1, bias=True, **dd)
        self.fc1 = nn.Linear(squeeze_channels * height * width, hidden, **dd)
        try:
            act_layer = get_act_layer(act) if act is not None else None
        except KeyError:
            raise ValueError(
                f"unknown act {act!r}: give an activation timm knows (relu, gelu, silu...), "
                "a module class, or None"
            ) from None
        self.act = act_layer() if act_layer is not None else nn.Identity()
        self.fc2 = nn.Linear(hidden, memory_blocks, **dd)
        self.memory = nn.Parameter(torch.empty(memory_blocks, channels, height, width, **dd))
        if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.temperature = float(temperature)
        # learned: a parameter (in the state dict) only then, so the paper's block keeps its keys
        self.log_temperature = nn.Parameter(torch.empty((), **dd)) if learn_temperature else None
        self.diversity = 0.0
        self.aux_loss: torch.Tensor | None = None

        self.bypass = False  # True: the block is the identity (ablation, `sr_bypassed`)
        self.record_weights = True  # keep the last forward's weights for analysis
        self.last_weights: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for squeeze and FC, zero memory."""
        for layer in (self.squeeze, self.fc1, self.fc2):
            fan_in = layer.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
        nn.init.zeros_(self.memory)
        if self.log_temperature is not None:
            nn.init.constant_(self.log_temperature, math.log(self.temperature))

    def memory_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights (B x P) the FC net gives each memory block for the feature map x."""
        squeezed = self.squeeze(x)
        if tuple(squeezed.shape[-2:]) != self.size:
            squeezed = F.adaptive_avg_pool2d(squeezed, self.size)
        logits = self.fc2(self.act(self.fc1(squeezed.flatten(1)))).float()  # float32: sums to 1 under bf16
        if self.log_temperature is not None:
            logits = logits / self.log_temperature.float().exp()
        elif self.temperature != 1.0:
            logits = logits / self.temperature
        return logits.softmax(dim=-1)

    def recall(
        self, weights: torch.Tensor, size: tuple[int, int] | None = None, channels_last: bool = False
    ) -> torch.Tensor:
        """The memory mix sum_p w_p M_p (B x C x H x W), one matrix product, resized to `size`.

        `channels_last` computes it in H x W x C order, so that adding it to a channels_last
        feature map reads both tensors in the same order.
        """
        batch, (height, width) = weights.shape[0], self.size
        weights = weights.to(self.memory.dtype)
        if channels_last:
            mix = weights @ self.memory.permute(0, 2, 3, 1).reshape(self.memory_blocks, -1)
            mix = mix.view(batch, height, width, self.channels).permute(0, 3, 1, 2)
        else:
            mix = (weights @ self.memory.flatten(1)).view(batch, self.channels, height, width)
        if size is not None and tuple(size) != self.size:
            mix = F.interpolate(mix, size=tuple(size), mode="bilinear", align_corners=False)
        return mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:  # an unbatched C x H x W map would come back with a batch dimension added
            raise ValueError(
                f"SqueezeRemember takes a batch of feature maps (B x C x H x W), got shape {tuple(x.shape)}: "
                "add the batch dimension (x[None])"
            )
        if self.bypass:
            return x
        weights = self.memory_weights(x)
        if self.record_weights and not torch.compiler.is_exporting():
            self.last_weights = weights.detach()
        if self.training and self.diversity > 0:
            self.aux_loss = self.diversity * diversity_loss(weights)
        channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        return x + self.recall(weights, x.shape[-2:], channels_last).to(x.dtype)

    def extra_repr(self) -> str:
        height, width = self.size
        text = (
            f"channels={self.channels}, size={height}x{width}, memory_blocks={self.memory_blocks}, "
            f"hidden={self.hidden}, squeeze_channels={self.squeeze_channels}"
        )
        if self.temperature != 1.0 or self.log_temperature is not None:
            text += f", temperature={self.temperature:g}" + (
                " (learned)" if self.log_temperature is not None else ""
            )
        return text


def diversity_loss(weights: torch.Tensor) -> torch.Tensor:
    """Minus the mutual information between a batch's images and the memory blocks they choose,
    over log P (so in [-1, 0]): the mean entropy of each image's weights minus the entropy of
    their mean. Uniform weights for every image, where the paper's block settles, score 0."""
    log_p = math.log(weights.shape[-1])
    if log_p == 0:  # one memory block: nothing to choose
        return weights.new_zeros(())
    each = -(weights * weights.clamp_min(1e-12).log()).sum(-1).mean()
    mean = weights.mean(0)
    overall = -(mean * mean.clamp_min(1e-12).log()).sum()
    return (each - overall) / log_p
