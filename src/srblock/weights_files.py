"""Reading a weights file, whatever made it: a state dict (.pth, .pt, .bin, .safetensors, by
content, not by name), a timm checkpoint ({"state_dict": ...}) or a run's ({"model": ...}), an
exported folder; `module.` and `_orig_mod.` prefixes (DDP, torch.compile) taken off; a file that
cannot be read is one line saying why."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

WRAPPERS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")  # dicts that hold the tensors
PREFIXES = ("module.", "_orig_mod.")
HUB_WEIGHTS = "model.safetensors"  # in a folder `srblock export RUN --hf DIR` wrote


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped and without DDP / compile prefixes."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / HUB_WEIGHTS).is_file():  # an exported folder
        path = path / HUB_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} not found: give the path of a .pth or .safetensors file "
            f"(or a folder holding an {HUB_WEIGHTS})"
        )
    try:
        if path.suffix.lower() == ".safetensors" or _is_safetensors(path):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader's error (pickle's KeyError, SafetensorError...) is the file's
        raise ValueError(f"pretrained weights {path} cannot be read ({unreadable_reason(err)})") from None
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


def _is_safetensors(path: Path) -> bool:
    """Whether a file is safetensors whatever its name: 8 bytes of header length, then JSON."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def unreadable_reason(err: Exception) -> str:
    """What a reader said about a file, in a few words: truncated, not a weights file..."""
    text = str(err).strip().splitlines()[0].split(". ")[0][:160] if str(err).strip() else ""
    if "Unsupported global" in str(err):  # a pickle of objects (a whole model), not of tensors
        return "a pickled model or other objects, not a state dict: save model.state_dict() instead"
    if "central directory" in text:
        return "truncated or damaged: not a complete zip archive"
    if isinstance(err, (KeyError, IndexError, pickle.UnpicklingError)) or "invalid load key" in text:
        return "not a weights file: text or another format"
    if "header too large" in text or "invalid header" in text:
        return f"not a safetensors file: {text}"
    if "incomplete metadata" in text or isinstance(err, EOFError):
        return f"truncated or damaged: {text or type(err).__name__}"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
