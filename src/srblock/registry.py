"""Model registry, timm-style: `register_model`, `list_models`, `create_model`."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Sequence

from torch import nn

from .block import ActLayer
from .insert import add_sr

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Registers a model builder under its function name; a name is registered once only."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered; choose another function name")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, _MODELS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown model {name!r}{hint}; choose one of: {', '.join(list_models())}"


def model_kwargs(name: str) -> list[str]:
    """The keyword arguments a registered model's builder takes (besides the sr_* ones)."""
    if name not in _MODELS:
        raise ValueError(unknown_model_message(name))
    return list(inspect.signature(_MODELS[name]).parameters)


def create_model(
    name: str,
    *,
    sr_stage: int | str | None = None,
    sr_blocks: int | None = None,
    sr_hidden: int = 8,
    sr_squeeze: int = 1,
    sr_act: ActLayer = "relu",
    input_size: Sequence[int] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Builds a registered model, with an SR block after stage `sr_stage` when it is given.

    `input_size` (channels, height, width) is the size the model will be fed; it sizes the SR
    memory and defaults to the model's own (32x32 for the CIFAR models, 224x224 for ImageNet).
    Other keyword arguments go to the model's builder (num_classes, in_chans, attn, reg...); one
    given as None is left to the builder's default, so callers need not know which builders take
    it (segmentation models take no attn or reg). `sr_blocks` (P) defaults to the model's own
    choice, else 4 (see `add_sr`).
    """
    if name not in _MODELS:
        raise ValueError(unknown_model_message(name))
    valid = model_kwargs(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"{name} takes no argument {', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(valid + ['sr_stage', 'sr_blocks', 'sr_hidden', 'sr_squeeze', 'sr_act', 'input_size'])}"
        )
    model = _MODELS[name](**kwargs)
    if sr_stage is not None:
        add_sr(
            model,
            sr_stage,
            memory_blocks=sr_blocks,
            hidden=sr_hidden,
            squeeze_channels=sr_squeeze,
            input_size=input_size,
            act=sr_act,
        )
    if input_size is not None:
        model.default_input_size = tuple(input_size)
    return model
