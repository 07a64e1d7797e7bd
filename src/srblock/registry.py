"""Model registry, timm-style (timm's `_registry.py`): `register_model`, `list_models`, and what
each model is (`ModelFacts`, declared at registration, read without building it). It holds what
has been registered so far and knows no model: the zoo (`srblock.models`) registers as it is
imported and hands these questions on, answered with the zoo in, as `torchvision.models` does.
Building a model by name is factory.py's `create_model`.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .spec import DEFAULT_MEMORY_BLOCKS, SPEC_KEYS

if typing.TYPE_CHECKING:
    from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_MODEL_CLASSES: dict[str, type[nn.Module] | None] = {}
_FACTS: dict[str, ModelFacts] = {}

EXTERNAL = ("tv", "timm")  # prefixes of `create_model` names from torchvision and timm
PYTHON_MODEL = "python:"  # a run's model given as an object (srblock.fit), not built by name


@dataclass(frozen=True)
class ModelFacts:
    """What a model is, declared where it is registered (as timm's `pretrained_cfg` and
    torchvision's `Weights.meta` do), so configs are checked without building it."""

    segments: bool = False  # predicts per pixel (a segmentation model) rather than per image
    sr_default_blocks: int = DEFAULT_MEMORY_BLOCKS  # P of an SR block added without one
    min_train_batch: int = 1  # 2 where a BatchNorm follows a global pooling (DeepLabv3's ASPP)
    input_size: tuple[int, int, int] | None = None  # what it is built for, which sizes SR memories


def register_model(fn: Callable[..., nn.Module] | None = None, **facts: Any) -> Any:
    """Registers a model builder under its function name, with its `ModelFacts`; a name is
    registered once only. Use as `@register_model` or `@register_model(segments=True, ...)`, as
    `srblock.register_model` (which has the zoo registered first, so that a name of the zoo is
    refused at once).

    The builder's return annotation names the model class whose constructor checks the keyword
    arguments `create_model` passes on (timm's convention: `def name(**kwargs) -> ModelClass`).
    """
    if fn is None:
        return lambda builder: register_model(builder, **facts)
    from torch import nn

    name = fn.__name__
    if name in _MODELS:
        first = _MODELS[name].__module__
        if fn.__module__.startswith("srblock.models") and not first.startswith("srblock.models"):
            raise ValueError(
                f"{first} registered a model {name!r} before srblock's zoo was imported, and the zoo "
                "has one of that name: rename yours (srblock.register_model imports the zoo first, "
                "so that it refuses a taken name at once)"
            )
        raise ValueError(f"model {name!r} is already registered (by {first}); choose another function name")
    try:
        returned = typing.get_type_hints(fn).get("return")
    except NameError:  # a class the annotation names is not defined yet: check against the builder
        returned = None
    _MODELS[name] = fn
    _MODEL_CLASSES[name] = (
        returned if isinstance(returned, type) and issubclass(returned, nn.Module) else None
    )
    _FACTS[name] = ModelFacts(**facts)
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def unknown_name(name: str, known: Sequence[str], where: str, n: int = 1) -> str:
    """'unknown <where> <name>', with the closest of `known` as a hint."""
    close = difflib.get_close_matches(name, known, n=n)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {where} {name!r}{hint}"


def model_arguments(name: str) -> list[str]:
    """The keyword arguments a registered model takes (besides the sr_* ones): its class's."""
    if name not in _MODELS:
        raise ValueError(
            f"{unknown_name(name, list(_MODELS), 'model')}; choose one of: {', '.join(list_models())}"
        )
    target = _MODEL_CLASSES[name] or _MODELS[name]
    params = inspect.signature(target).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _accepts_any(name: str) -> bool:
    """A builder without a model class that takes **kwargs: its own checks apply."""
    target = _MODEL_CLASSES[name] or _MODELS[name]
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


def build_registered(name: str, kwargs: dict[str, object]) -> nn.Module:
    """The registered model `name` built with `kwargs`; one its class does not take is one line."""
    valid = model_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown and not _accepts_any(name):
        raise ValueError(
            f"{name} takes no argument {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid + ['sr_stage', 'sr', *SPEC_KEYS, 'input_size'])}"
        )
    return _MODELS[name](**kwargs)


def model_facts(name: str) -> ModelFacts:
    """What a model is (task, default P, smallest training batch, input size), without building
    it: declared at registration for the zoo, read from torchvision's and timm's registries."""
    source, _, bare = name.rpartition(":")
    if name.startswith(PYTHON_MODEL):  # srblock.fit trains classifiers
        return ModelFacts()
    if source == "tv":
        import torchvision

        segments = bare in torchvision.models.list_models(module=torchvision.models.segmentation)
        # DeepLabv3's ASPP pooling branch normalises one value per channel: it needs 2 images
        return ModelFacts(segments=segments, min_train_batch=2 if bare.startswith("deeplabv3") else 1)
    if source == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(bare) if bare in timm.list_models() else None
        size = getattr(cfg, "input_size", None) if cfg is not None else None
        return ModelFacts(input_size=tuple(size) if size else None)
    if name not in _FACTS:
        raise ValueError(
            f"{unknown_name(name, list(_MODELS), 'model')}; choose one of: {', '.join(list_models())}"
        )
    return _FACTS[name]
