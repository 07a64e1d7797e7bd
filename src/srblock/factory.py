"""`create_model`, timm-style (timm's `_factory.py`): srblock's zoo by name (models/), and any
torchvision or timm model as `tv:NAME` or `timm:NAME`, each with an SR block after a stage when
`sr_stage` is given, and the facts srblock reads off a model attached once.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .insert import add_sr
from .models import build_registered, list_models, model_facts
from .pretrained import hub_offline_if_unreachable, load_matching, load_pretrained, timm_pretrained_error
from .registry import EXTERNAL, unknown_name
from .spec import RENAMED_KEYS, SPEC_KEYS, SRSpec, as_spec, spec_from_keys
from .weights_files import read_state_dict


def _create_external(source: str, name: str, kwargs: dict[str, object]) -> nn.Module:
    """A torchvision (`tv`) or timm model by name, with `num_classes` / `in_chans` where given."""
    import timm
    import torchvision

    if source == "timm":
        known = timm.list_models()
        if name not in known:
            raise ValueError(f"{unknown_name(name, known, 'timm model', n=3)}; see timm.list_models()")
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
            f"{unknown_name(name, known, 'torchvision model', n=3)}; see torchvision.models.list_models()"
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
    elif name in list_models():
        model = build_registered(name, kwargs)
    else:
        raise ValueError(
            f"{unknown_name(name, list_models(), 'model')}; choose one of: {', '.join(list_models())}"
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
