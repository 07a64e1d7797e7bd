"""Model registry, timm-style: `register_model`, `list_models`, `create_model`.

`create_model` builds srblock's zoo by name, and any torchvision or timm model as `tv:NAME` or
`timm:NAME`, each with an SR block after a stage when `sr_stage` is given.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .insert import add_sr
from .pretrained import (
    hub_offline_if_unreachable,
    load_matching,
    load_pretrained,
    read_state_dict,
    timm_pretrained_error,
)
from .spec import DEFAULT_MEMORY_BLOCKS, RENAMED_KEYS, SPEC_KEYS, SRSpec, as_spec, spec_from_keys

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
    registered once only. Use as `@register_model` or `@register_model(segments=True, ...)`.

    The builder's return annotation names the model class whose constructor checks the keyword
    arguments `create_model` passes on (timm's convention: `def name(**kwargs) -> ModelClass`).
    """
    if fn is None:
        return lambda builder: register_model(builder, **facts)
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered; choose another function name")
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


def _unknown(name: str, known: Sequence[str], where: str, n: int = 1) -> str:
    close = difflib.get_close_matches(name, known, n=n)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {where} {name!r}{hint}"


def model_arguments(name: str) -> list[str]:
    """The keyword arguments a registered model takes (besides the sr_* ones): its class's."""
    if name not in _MODELS:
        raise ValueError(
            f"{_unknown(name, list(_MODELS), 'model')}; choose one of: {', '.join(list_models())}"
        )
    target = _MODEL_CLASSES[name] or _MODELS[name]
    params = inspect.signature(target).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _accepts_any(name: str) -> bool:
    """A builder without a model class that takes **kwargs: its own checks apply."""
    target = _MODEL_CLASSES[name] or _MODELS[name]
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


def _create_zoo(name: str, kwargs: dict[str, object]) -> nn.Module:
    valid = model_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown and not _accepts_any(name):
        raise ValueError(
            f"{name} takes no argument {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid + ['sr_stage', 'sr', *SPEC_KEYS, 'input_size'])}"
        )
    return _MODELS[name](**kwargs)


def _create_external(source: str, name: str, kwargs: dict[str, object]) -> nn.Module:
    """A torchvision (`tv`) or timm model by name, with `num_classes` / `in_chans` where given."""
    import timm
    import torchvision

    if source == "timm":
        known = timm.list_models()
        if name not in known:
            raise ValueError(f"{_unknown(name, known, 'timm model', n=3)}; see timm.list_models()")
        try:
            with hub_offline_if_unreachable():
                model = timm.create_model(name, **kwargs)
        except TypeError as err:
            raise ValueError(f"timm:{name} does not take these arguments ({err})") from None
        except Exception as err:  # reading weights: the hub's, the network's or the file's errors
            if not kwargs.get("pretrained"):
                raise
            raise timm_pretrained_error(name, err) from None
        return model
    known = torchvision.models.list_models()
    if name not in known:
        raise ValueError(
            f"{_unknown(name, known, 'torchvision model', n=3)}; see torchvision.models.list_models()"
        )
    if kwargs.get("in_chans", 3) != 3:
        raise ValueError(
            f"tv:{name} takes 3 input channels only: use a timm model (timm:NAME) for in_chans != 3"
        )
    kwargs.pop("in_chans", None)
    try:
        model = torchvision.models.get_model(name, **kwargs)
    except TypeError as err:
        raise ValueError(f"tv:{name} does not take these arguments ({err})") from None
    return model


def create_model(
    name: str,
    *,
    sr_stage: int | str | None = None,
    sr: SRSpec | None = None,
    input_size: Sequence[int] | None = None,
    pretrained: bool | str | None = None,
    pretrained_backbone: str | None = None,
    pretrained_partial: bool = False,
    **kwargs: object,
) -> nn.Module:
    """Builds a model by name, with an SR block (`sr`, an `SRSpec`; the paper's by default) after
    stage `sr_stage` when it is given.

    `name` is a registered model (`list_models()`), `tv:NAME` (torchvision) or `timm:NAME`.
    `input_size` (channels, height, width) is the size the model will be fed; it sizes the SR
    memory and defaults to the model's own (32x32 for the CIFAR models, 224x224 for ImageNet,
    timm's `pretrained_cfg`). The spec's settings may also come as flat keys, `sr_<field>=...`
    (as recipes and timm's keyword arguments spell them: `sr_memory_blocks=2`). Other keyword
    arguments go to the model (num_classes, in_chans, attn, reg...); one given as None is left
    to the model's default, so callers need not know which models take it (segmentation models
    take no attn or reg). `pretrained` (True or a weights file) loads weights before the SR block
    is added, so the model starts exactly as the pretrained one; `pretrained_backbone` (a file)
    loads a segmentation model's backbone, e.g. ImageNet ResNet50. A weights file of another
    architecture is refused unless `pretrained_partial` (then what fits loads, the rest stays new).
    """
    sr = as_spec(sr, f"create_model({name!r})")
    flat = {k: kwargs.pop(k) for k in list(kwargs) if k in SPEC_KEYS or k in RENAMED_KEYS}
    if flat:
        sr = spec_from_keys(flat, f"create_model({name!r})", base=sr)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    pretrained = "true" if pretrained is True else (pretrained or None)
    source, _, bare = name.rpartition(":")
    if source == "timm" and pretrained == "true":  # timm fetches its own and fits head and channels
        kwargs["pretrained"], pretrained = True, None
    if source in EXTERNAL:
        model = _create_external(source, bare, kwargs)
    elif source:
        raise ValueError(f"unknown model source {source!r} in {name!r}: write NAME, tv:NAME or timm:NAME")
    elif name in _MODELS:
        model = _create_zoo(name, kwargs)
    else:
        raise ValueError(
            f"{_unknown(name, list(_MODELS), 'model')}; choose one of: {', '.join(list_models())}"
        )
    if pretrained is not None:  # before the SR block goes in: the network starts as the pretrained one
        model.pretrained_summary = load_pretrained(model, name, str(pretrained), pretrained_partial)
    elif kwargs.get("pretrained"):
        model.pretrained_summary = f"timm:{bare}'s pretrained weights (head fitted by timm)"
    if pretrained_backbone is not None:  # a segmentation model's ImageNet backbone (mmsegmentation's start)
        if not isinstance(getattr(model, "backbone", None), nn.Module):
            raise ValueError(f"{name} has no backbone to load pretrained_backbone into: use pretrained")
        path = str(pretrained_backbone)
        model.pretrained_summary = "backbone: " + load_matching(
            model.backbone, read_state_dict(path), path, pretrained_partial, has_head=False
        )
    attach_facts(model, name, kwargs.get("in_chans"), input_size)
    if sr_stage is not None:
        add_sr(model, sr_stage, sr, input_size=input_size)
    return model


def attach_facts(model: nn.Module, name: str, in_chans: int | None, input_size: Sequence[int] | None) -> None:
    """The facts srblock reads off a built model, attached once here for every model (zoo,
    torchvision's, timm's), as timm's build_model_with_cfg attaches a pretrained_cfg: the input it
    is built for (`default_input_size`, which sizes an SR memory added without one) and the P of
    an SR block added without one (`sr_default_blocks`), from the facts declared at registration."""
    facts = model_facts(name)
    size = tuple(input_size or facts.input_size or (3, 224, 224))
    channels = size[0] if input_size is not None or in_chans is None else in_chans
    model.default_input_size = (int(channels), *size[1:])
    model.sr_default_blocks = facts.sr_default_blocks


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
            f"{_unknown(name, list(_MODELS), 'model')}; choose one of: {', '.join(list_models())}"
        )
    return _FACTS[name]
