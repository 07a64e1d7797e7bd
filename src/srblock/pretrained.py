"""Pretrained weights into a model before its SR block goes in, so it starts as the pretrained one.

`pretrained` is `true` (timm's or torchvision's published weights, which need a download or a
cached copy) or a file: a state dict (.pth, .pt, .bin, .safetensors), a timm checkpoint
({"state_dict": ...}) or a run's checkpoint ({"model": ...}); `module.` and `_orig_mod.` prefixes
(DDP, torch.compile) are taken off. Tensors whose shape differs (the classifier of another number
of classes) keep the new model's initialisation; a 3-channel first convolution is summed into a
grey one, as timm does.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

WRAPPERS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")  # dicts that hold the tensors
PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped and without DDP / compile prefixes."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} not found: give the path of a .pth or .safetensors file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"pretrained weights {path} cannot be read ({reason[:200]}): not a weights file"
        ) from None
    # a training checkpoint's tensors sit under a key (beside, e.g., a tensor of its best accuracy)
    while isinstance(state, dict):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    tensors = (
        {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    )
    if not tensors:
        raise ValueError(
            f"pretrained weights {path} hold no tensors by name (a state dict): not a weights file"
        )
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def load_matching(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> str:
    """Copies every tensor of `tensors` whose name and shape the model shares; returns one line
    saying what was loaded, replaced (another shape: the new head), adapted and left out."""
    own = model.state_dict()
    loaded, replaced, adapted = {}, [], []
    for key, target in own.items():  # in the model's order
        if key not in tensors:
            continue
        value = tensors[key]
        if value.shape == target.shape:
            loaded[key] = value
        elif (
            value.dim() == 4
            and value.shape[1] == 3
            and target.shape[1] == 1
            and value.shape[0] == target.shape[0]
        ):
            loaded[key] = value.sum(dim=1, keepdim=True)  # an RGB first convolution for grey images
            adapted.append(key)
        else:
            replaced.append(key)
    if not loaded:
        example = next(iter(tensors))
        raise ValueError(
            f"{source} holds no tensor of this model (its first is {example!r}): it is from another network"
        )
    missing = [k for k in own if k not in loaded and k not in replaced]
    unused = [k for k in tensors if k not in own]
    model.load_state_dict(loaded, strict=False)
    parts = [f"loaded {len(loaded)} tensors from {source}"]
    if replaced:
        parts.append(f"replaced (other shape, e.g. the head): {', '.join(replaced[:4])}")
    if adapted:
        parts.append(f"summed to one channel: {', '.join(adapted)}")
    parts.append(f"{len(missing)} missing" + (f" ({', '.join(missing[:4])})" if missing else ""))
    parts.append(f"{len(unused)} unused" + (f" ({', '.join(unused[:4])})" if unused else ""))
    return "; ".join(parts)


def _torchvision_state(name: str) -> tuple[dict[str, torch.Tensor], str]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, check_hash=False), str(cached)
    except Exception as err:  # offline: urllib's, socket's or hub's errors, all the same to a user
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


def timm_pretrained_error(name: str, err: Exception) -> ValueError:
    """timm could not fetch a model's weights (offline): say where they come from and what to do."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    where = (getattr(cfg, "hf_hub_id", None) and f"huggingface.co/{cfg.hf_hub_id}") or getattr(cfg, "url", "")
    return ValueError(
        f"timm:{name}'s pretrained weights could not be fetched ({type(err).__name__}): download them from "
        f"{where or 'its source'} where there is a network and pass --set pretrained=PATH (or fill the "
        "Hugging Face cache, HF_HOME)"
    )


def load_pretrained(model: nn.Module, name: str, pretrained: str) -> str:
    """Loads `pretrained` (a file, or "true" for torchvision's published weights) into `model`,
    built as `name`; returns the one-line summary. timm's published weights load in create_model."""
    if pretrained != "true":
        path = Path(pretrained).expanduser()
        return load_matching(model, read_state_dict(path), str(path))
    source, _, bare = name.rpartition(":")
    if source == "tv":
        tensors, cached = _torchvision_state(bare)
        return load_matching(model, tensors, cached)
    raise ValueError(
        f"{name} has no published weights: pass --set pretrained=PATH (a state dict), "
        "or use a timm: or tv: model"
    )
