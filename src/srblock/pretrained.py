"""Pretrained weights into a model before its SR block goes in, so it starts as the pretrained one.

`pretrained` is `true` (timm's or torchvision's published weights, which need a download or a
cached copy) or a file: a state dict (.pth, .pt, .bin, .safetensors), a timm checkpoint
({"state_dict": ...}) or a run's checkpoint ({"model": ...}); `module.` and `_orig_mod.` prefixes
(DDP, torch.compile) are taken off. Tensors whose shape differs (the classifier of another number
of classes) keep the new model's initialisation; a first convolution of another channel count is
adapted as timm adapts it (summed into one channel, repeated and scaled for more). An exported
folder (`srblock export RUN --hf DIR`) is read through its model.safetensors (weights_files.py
reads the files).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .weights_files import read_state_dict, unreadable_reason

MIN_LOADED = 0.9  # the share of a model's weights outside its head a file must fill to count as its own


def head_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the model's classifier(s), which another number of classes reshapes:
    timm's get_classifier / pretrained_cfg, else (torchvision) the last layer of the model and
    of each top-level classifier (a segmentation model's auxiliary head)."""
    names: list[str] = []
    modules = dict(model.named_modules())
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        names += [n for n, m in modules.items() if n and m is head]
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    names += [classifier] if isinstance(classifier, str) else list(classifier or ())
    if not names:
        layers = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
        tops = {n for n in modules if n and "." not in n and ("classifier" in n or n == "head")}
        names += [layers[-1]] if layers else []
        for top in tops:
            names += [n for n in layers if n.startswith(top + ".")][-1:]
    return {k for k in model.state_dict() if any(k == n or k.startswith(n + ".") for n in names)}


def first_conv_key(model: nn.Module) -> str | None:
    """The state-dict key of the model's first convolution's weights (timm's pretrained_cfg
    `first_conv`, else the first Conv2d): the one tensor another input channel count reshapes."""
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if not isinstance(first, str) or f"{first}.weight" not in model.state_dict():  # (a wrapper renames)
        first = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else f"{first}.weight"


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's weights for `in_chans` input channels, as timm adapts pretrained weights
    (adapt_input_conv): summed into one channel, or repeated and scaled so that an image whose
    channels are alike gives the same response."""
    from timm.models import adapt_input_conv

    if "base_chans" in inspect.signature(adapt_input_conv).parameters:
        return adapt_input_conv(in_chans, weight, base_chans=weight.shape[1])
    if weight.shape[1] == 3 or in_chans == 1:  # (what timm's adapt_input_conv took before base_chans)
        return adapt_input_conv(in_chans, weight)
    raise ValueError(
        f"weights for {weight.shape[1]} input channels adapt to {in_chans} with timm's adapt_input_conv "
        "of a newer timm: pip install -U timm"
    )


def adapt_input_channels(model: nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    """The first convolution of `tensors` adapted in place to the model's input channels where only
    those differ (adapt_first_conv); returns the key adapted, if any."""
    key, own = first_conv_key(model), model.state_dict()
    value, target = tensors.get(key), own.get(key)
    if value is None or target is None or value.dim() != 4 or value.shape == target.shape:
        return []
    if value.shape[::2] != target.shape[::2]:  # (out channels or kernel differ: another network)
        return []
    tensors[key] = adapt_first_conv(value, target.shape[1])
    return [key]


def load_matching(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    source: str,
    partial: bool = False,
    has_head: bool = True,
) -> str:
    """Copies every tensor of `tensors` whose name and shape the model shares, and returns one line
    of what was loaded, left new in the head (another number of classes), adapted, missing and unused.

    A file of another architecture is refused (unless `partial`): a tensor outside the head with
    another shape, less than MIN_LOADED of the model's weights outside its head filled, or more
    than 1 - MIN_LOADED of the file's tensors unknown to the model (a deeper network of the same
    names). `has_head=False`: the model (a backbone) has no head, so no other shape is excused."""
    own = model.state_dict()
    head = head_keys(model) if has_head else set()
    tensors = dict(tensors)  # (the caller's stay as they are)
    adapted = adapt_input_channels(model, tensors)  # e.g. grey weights for RGB images
    loaded, new_head, other_shape = {}, [], []
    for key, target in own.items():  # in the model's order
        if key not in tensors:
            continue
        value = tensors[key]
        if value.shape == target.shape:
            loaded[key] = value
        else:
            (new_head if key in head else other_shape).append(key)
    if not loaded:
        shaped = new_head + other_shape
        example = (
            f"{shaped[0]} is {tuple(tensors[shaped[0]].shape)} there, {tuple(own[shaped[0]].shape)} here"
            if shaped
            else f"its first is {next(iter(tensors))!r}"
        )
        raise ValueError(
            f"{source} holds no tensor of this model that fits ({example}): it is from another network"
        )
    weights = [k for k in own if k not in head and not k.endswith("num_batches_tracked")]
    filled = sum(k in loaded for k in weights)
    share = filled / max(len(weights), 1)
    if not partial and other_shape:
        shown = "; ".join(
            f"{k}: {tuple(tensors[k].shape)} in the file, {tuple(own[k].shape)} here" for k in other_shape[:2]
        )
        raise ValueError(
            f"{source} is from another architecture: {len(other_shape)} tensors outside the head have "
            f"other shapes ({shown}); set pretrained_partial=true to load only the {filled} of "
            f"{len(weights)} that fit"
        )
    unused = [k for k in tensors if k not in own]
    if not partial and len(unused) > (1 - MIN_LOADED) * len(tensors):
        raise ValueError(
            f"{source} holds {len(unused)} of its {len(tensors)} tensors under names this model lacks "
            f"(e.g. {', '.join(unused[:2])}): it is a larger network of another architecture; set "
            "pretrained_partial=true to load what fits anyway"
        )
    if not partial and share < MIN_LOADED:
        absent = [k for k in weights if k not in loaded]
        raise ValueError(
            f"{source} fills only {filled} of the model's {len(weights)} weights outside its head "
            f"({share:.0%}; none for {', '.join(absent[:3])}...): it is from another network; set "
            f"pretrained_partial=true to load them anyway"
        )
    missing = [k for k in weights if k not in loaded and k not in other_shape]
    model.load_state_dict(loaded, strict=False)
    parts = [f"loaded {len(loaded)} tensors from {source} ({share:.0%} of the weights outside the head)"]
    if new_head:
        parts.append(f"head left new (other shape): {', '.join(new_head[:4])}")
    if other_shape:
        parts.append(f"{len(other_shape)} of another shape left at init: {', '.join(other_shape[:4])}")
    if adapted:
        parts.append(f"adapted to {own[adapted[0]].shape[1]} input channels: {', '.join(adapted)}")
    parts.append(f"{len(missing)} missing" + (f" ({', '.join(missing[:4])})" if missing else ""))
    parts.append(f"{len(unused)} unused" + (f" ({', '.join(unused[:4])})" if unused else ""))
    return "; ".join(parts)


def _torchvision_state(name: str) -> tuple[dict[str, torch.Tensor], str]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    present = cached.is_file()
    try:
        return weights.get_state_dict(progress=False, check_hash=False), str(cached)
    except Exception as err:  # offline: urllib's, socket's or hub's errors, all the same to a user
        if present:  # there, but unreadable: downloading is not the problem
            raise ValueError(
                f"tv:{name}'s cached weights {cached} cannot be read ({unreadable_reason(err)}): "
                "delete the file "
                "to fetch it again, or place a good copy there"
            ) from None
        raise ValueError(
            f"tv:{name}'s pretrained weights could not be downloaded ({type(err).__name__}): place "
            f"{weights.url} at {cached}, or pass --set pretrained=PATH"
        ) from None


def _reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_offline_if_unreachable() -> Iterator[None]:
    """Without a network, the Hugging Face hub only looks in its cache: an answer in seconds
    instead of a minute of retries."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    before = constants.HF_HUB_OFFLINE
    # behind a proxy or with a mirror, only the hub itself can tell: let it try
    routed = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HF_ENDPOINT"))
    if not before and not routed and not _reachable("huggingface.co"):
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _hub_cached(repo: str | None) -> str | None:
    """The weights file of a Hugging Face repo in the local cache, if one is there."""
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):  # timm's names, in its order
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return found
    return None


def timm_pretrained_error(name: str, err: Exception) -> ValueError:
    """timm could not fetch a model's weights (offline): say where they come from and what to do."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    cached = _hub_cached(getattr(cfg, "hf_hub_id", None))
    if cached is not None:  # there, but unreadable: downloading is not the problem
        return ValueError(
            f"timm:{name}'s cached weights {cached} cannot be read ({unreadable_reason(err)}): "
            "delete the file "
            "to fetch it again, or pass --set pretrained=PATH"
        )
    where = (getattr(cfg, "hf_hub_id", None) and f"huggingface.co/{cfg.hf_hub_id}") or getattr(cfg, "url", "")
    return ValueError(
        f"timm:{name}'s pretrained weights could not be fetched ({type(err).__name__}): download them from "
        f"{where or 'its source'} where there is a network and pass --set pretrained=PATH (or fill the "
        "Hugging Face cache, HF_HOME)"
    )


def load_pretrained(model: nn.Module, name: str, pretrained: str, partial: bool = False) -> str:
    """Loads `pretrained` (a file, or "true" for torchvision's published weights) into `model`,
    built as `name`; returns the one-line summary. timm's published weights load in create_model."""
    if pretrained != "true":
        path = Path(pretrained).expanduser()
        return load_matching(model, read_state_dict(path), str(path), partial)
    source, _, bare = name.rpartition(":")
    if source == "tv":
        tensors, cached = _torchvision_state(bare)
        return load_matching(model, tensors, cached, partial)
    raise ValueError(
        f"{name} has no published weights: pass --set pretrained=PATH (a state dict), "
        "or use a timm: or tv: model"
    )
