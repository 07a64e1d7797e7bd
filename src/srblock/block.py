"""The Squeeze-and-Remember block (arXiv 2410.00823; docs/method.md): squeeze, remember, add."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer
from torch import nn

from .spec import DEFAULT_MEMORY_BLOCKS, SRSpec, as_spec, spec_from_legacy

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
        spec: the block's settings (`SRSpec`: P, h, C_s, the activation, the temperature...);
            the paper's defaults where None.

    The forward is the math alone. What else uses a block works from outside it:
    ``srblock.sr_bypassed`` swaps it for the identity (the ablation), and
    ``srblock.memory.recorded_weights`` records its softmax weights (analyses, and the
    ``sr_diversity`` loss term, `diversity_loss`).

    Cost (docs/method.md): the recall and the add are one ``addmm`` on views of the feature map
    and of the memory, in the feature map's memory format (channels_last included) and dtype.

    Feature maps of another size than ``size`` (beyond the paper; docs/method.md): the squeezed
    map is adaptive-average-pooled to ``size`` before the FC net and the recalled memory is
    resized bilinearly to the incoming size.
    """

    def __init__(
        self,
        channels: int,
        size: int | tuple[int, int],
        spec: SRSpec | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **legacy: Any,
    ) -> None:
        super().__init__()
        spec = as_spec(spec, "SqueezeRemember")
        spec = spec_from_legacy(legacy, "SqueezeRemember", spec) or spec or SRSpec()
        if legacy:
            raise TypeError(f"SqueezeRemember got unexpected keyword arguments: {', '.join(legacy)}")
        if spec.memory_blocks is None:
            spec = dataclasses.replace(spec, memory_blocks=DEFAULT_MEMORY_BLOCKS)
        dd = {"device": device, "dtype": dtype}
        self.spec = spec
        self.channels = _positive("channels", channels)
        self.size = _size2(size)
        self.memory_blocks, self.hidden = spec.memory_blocks, spec.hidden
        self.squeeze_channels = spec.squeeze_channels
        height, width = self.size

        self.squeeze = nn.Conv2d(channels, self.squeeze_channels, kernel_size=1, bias=True, **dd)
        self.fc1 = nn.Linear(self.squeeze_channels * height * width, self.hidden, **dd)
        try:
            act_layer = get_act_layer(spec.act) if spec.act is not None else None
        except KeyError:
            raise ValueError(
                f"unknown act {spec.act!r}: give an activation timm knows (relu, gelu, silu...), "
                "a module class, or None"
            ) from None
        self.act = act_layer() if act_layer is not None else nn.Identity()
        self.fc2 = nn.Linear(self.hidden, self.memory_blocks, **dd)
        self.memory = nn.Parameter(torch.empty(self.memory_blocks, channels, height, width, **dd))
        self.temperature = spec.temperature
        # learned: a parameter (in the state dict) only then, so the paper's block keeps its keys
        self.log_temperature = nn.Parameter(torch.empty((), **dd)) if spec.learn_temperature else None
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
        """Softmax weights (B x P, float32) the FC net gives each memory block for the feature map x."""
        squeezed = _pooled_to(self.squeeze(x) if not _fusing() else self._squeeze_by_sum(x), self.size)
        hidden = self.act(self.fc1(squeezed.flatten(1)))
        log_temperature = self.log_temperature  # (a local: TorchScript refines it, not an attribute)
        if log_temperature is not None:
            logits = self.fc2(hidden) * torch.exp(-log_temperature)
        elif self.temperature != 1.0:  # a fixed T folded into fc2's product: no kernel of its own
            scale = 1.0 / self.temperature
            logits = torch.addmm(self.fc2.bias, hidden, self.fc2.weight.t(), beta=scale, alpha=scale)
        else:
            logits = self.fc2(hidden)
        # float32 (so the weights sum to 1 under bf16) inside the softmax kernel, not a cast before it
        return F.softmax(logits, dim=-1, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch (no shape check)
            return _recall(x, self.memory_weights(x), self.memory)
        else:
            if not isinstance(x, torch.fx.Proxy):  # symbolic tracing: the shape is not known yet
                _check_batched(x)
            weights = self.memory_weights(x)
            if _fusing() and x.shape[-2:] == self.size:  # torch.compile: elementwise, for one kernel
                mix = (weights.view(-1, self.memory_blocks, 1, 1, 1) * self.memory).sum(1)
                return x + mix.to(x.dtype)
            return _recall(x, weights, self.memory)

    def _squeeze_by_sum(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 squeeze conv as a sum over channels, which torch.compile fuses with the map's
        producer (and its gradient with the add of the two gradients of x) instead of a conv."""
        weight, bias = (
            self.squeeze.weight.view(1, self.squeeze_channels, self.channels, 1, 1),
            self.squeeze.bias,
        )
        assert bias is not None  # (the squeeze conv has one: TorchScript needs to be told)
        return (x.unsqueeze(1) * weight).sum(2) + bias.view(1, -1, 1, 1)

    def remember(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``x + sum_p w_p M_p`` for the softmax weights (B x P) of `memory_weights`."""
        return _recall(x, weights, self.memory)

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


def _pooled_to(squeezed: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The squeezed map at the memory's size (adaptive average pooling where it is another)."""
    if squeezed.shape[-2] != size[0] or squeezed.shape[-1] != size[1]:
        squeezed = F.adaptive_avg_pool2d(squeezed, size)
    return squeezed


def _recall(x: torch.Tensor, weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """``x + sum_p w_p M_p``: eagerly one matrix product with the add in it; under TorchScript
    the product, then the add."""
    if torch.jit.is_scripting():
        batch, channels, height, width = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        mix = (weights.to(memory.dtype) @ memory.flatten(1)).view(
            batch, channels, memory.shape[2], memory.shape[3]
        )
        if height != memory.shape[2] or width != memory.shape[3]:
            mix = F.interpolate(mix, size=[height, width], mode="bilinear", align_corners=False)
        return x + mix.to(x.dtype)
    else:
        return _recall_fused(x, weights, memory)


def _recall_fused(x: torch.Tensor, weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The recall and the add as one matrix product (``addmm``), in x's dtype, on views of x and of
    the memory in x's memory format: no copy of either when their layouts agree
    (``model.to(memory_format=torch.channels_last)`` converts the memory too)."""
    batch, channels, height, width = x.shape
    size = tuple(memory.shape[-2:])
    if (height, width) != size or _autocast_would_round(x):
        # beyond the paper (another size: the mix is resized), or a float32 map under autocast
        # (a fused add would round x itself): the mix on its own, then the add in x's dtype
        mix = (weights.to(memory.dtype) @ memory.flatten(1)).view(batch, channels, *size)
        if (height, width) != size:
            mix = F.interpolate(mix, size=(height, width), mode="bilinear", align_corners=False)
        return x + mix.to(x.dtype)
    weights = weights.to(x.dtype)
    if x.is_contiguous() or not _channels_last(x):
        out = torch.addmm(x.flatten(1), weights, memory.flatten(1).to(x.dtype))
        return out.view(batch, channels, height, width)
    # channels_last: x is B x H x W x C in memory, so the memory is recalled in H x W x C order
    out = torch.addmm(
        x.permute(0, 2, 3, 1).flatten(1), weights, memory.permute(0, 2, 3, 1).flatten(1).to(x.dtype)
    )
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


# torch.fx traces these as leaves (their shape checks need sizes a symbolic trace does not have),
# so fx.symbolic_trace and timm's / torchvision's FX feature extraction work with SR blocks in,
# and an FX graph of them still compiles with TorchScript
torch.fx.wrap("_pooled_to")
torch.fx.wrap("_recall")


def entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of softmax weights (zero weights count as 0 log 0 = 0)."""
    return -(weights * weights.clamp_min(1e-12).log()).sum(-1)


def diversity_loss(weights: torch.Tensor) -> torch.Tensor:
    """Minus the mutual information between a batch's images and the memory blocks they choose,
    over log P (so in [-1, 0]): the mean entropy of each image's weights minus the entropy of
    their mean. Uniform weights for every image, where the paper's block settles, score 0."""
    log_p = math.log(weights.shape[-1])
    if log_p == 0:  # one memory block: nothing to choose
        return weights.new_zeros(())
    return (entropy(weights).mean() - entropy(weights.mean(0))) / log_p


def _fusing() -> bool:
    """True while torch.compile traces (not torch.export, whose graph others run unfused)."""
    if torch.jit.is_scripting():
        return False
    else:
        return torch.compiler.is_compiling() and not torch.compiler.is_exporting()


def _autocast_would_round(x: torch.Tensor) -> bool:
    """True where autocast would run a matrix product on x in a lower precision than x's own."""
    device = x.device.type
    if device not in ("cpu", "cuda"):  # autocast has no state for the meta device (shape checks)
        return False
    return torch.is_autocast_enabled(device) and x.dtype != torch.get_autocast_dtype(device)


def _channels_last(x: torch.Tensor) -> bool:
    """Whether x is laid out channels_last; inside torch.func.vmap (stacked seeds, srblock.stack),
    where a memory format cannot be asked for, the recall takes the layout-free path."""
    if torch._C._functorch.is_batchedtensor(x):
        return False
    return x.is_contiguous(memory_format=torch.channels_last)


def _check_batched(x: torch.Tensor) -> None:
    """Eager callers get a one-line error for an unbatched map (tracing and scripting skip it)."""
    if x.dim() != 4:  # an unbatched C x H x W map would come back with a batch dimension added
        raise ValueError(
            f"SqueezeRemember takes a batch of feature maps (B x C x H x W), got shape {tuple(x.shape)}: "
            "add the batch dimension (x[None])"
        )
