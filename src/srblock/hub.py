"""Weights people can share: a finished run as a folder in timm's Hugging Face hub format, and
reading one back.

`srblock.export.export_hf(RUN, DIR)` writes DIR/model.safetensors (the tested checkpoint's weights) and
DIR/config.json: the `architecture` (`srblock_<model>`, in timm's registry once srblock is
imported), `num_classes`, `label_names`, a `pretrained_cfg` with the run's input size, mean and
std, and `model_args` (the SR settings, `in_chans`, the model's own arguments), so that
`timm.create_model("srblock_<model>", pretrained=True, pretrained_cfg_overlay=dict(file=DIR))`
or `timm.create_model("local-dir:DIR", pretrained=True)` rebuilds it offline. The run's own
config rides along under `srblock`, so `srblock predict DIR` prepares images as the run did
(`srblock.predict.hub_trained_model`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from .config import TrainConfig
from .data.catalog import channel_stats
from .pretrained import adapt_input_channels
from .weights_files import HUB_WEIGHTS

HUB_CONFIG = "config.json"


def json_value(value: Any) -> Any:
    """A value as JSON holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def timm_model_args(cfg: TrainConfig) -> dict[str, Any]:
    """What `create_model` needs to build the run's model again (besides its weights)."""
    channels, height, width = cfg.input_size()
    args: dict[str, Any] = {"num_classes": cfg.num_classes(), "in_chans": channels}
    args.update({k: json_value(v) for k, v in cfg.model_kwargs().items() if v is not None})
    if cfg.sr_stage is not None:
        spec = {f"sr_{k}": json_value(v) for k, v in dataclasses.asdict(cfg.sr).items() if v is not None}
        args.update(sr_stage=cfg.sr_stage, input_size=[channels, height, width], **spec)
    return args


def hub_weights(file: str | Path) -> Path:
    """The weights file a `pretrained_cfg` names: the file itself, or model.safetensors in a folder."""
    path = Path(file).expanduser()
    return path / HUB_WEIGHTS if path.is_dir() else path


def load_hub_weights(
    model: nn.Module,
    file: str | Path,
    name: str,
    classifier: str | None = None,
) -> None:
    """Loads an exported model.safetensors into `model`. As timm does, a classifier of another
    number of classes starts anew (fine-tuning) and the first convolution is adapted to another
    number of input channels; any other difference is one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = hub_weights(file)
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise ValueError(f"{path} cannot be read as safetensors weights ({err}): export it again") from None
    own = model.state_dict()
    adapt_input_channels(model, state)
    other = [k for k in state if k in own and state[k].shape != own[k].shape]
    if classifier and other and all(k.startswith(f"{classifier}.") for k in other):
        state = {k: v for k, v in state.items() if k not in other}  # a new head: only its shape differs
    missing = [k for k in own if k not in state and not (classifier and k.startswith(f"{classifier}."))]
    unexpected = [k for k in state if k not in own]
    other = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or other:
        some = ", ".join([*missing[:2], *unexpected[:2], *other[:2]])
        raise ValueError(
            f"{path} does not fit {name} with these arguments ({len(missing)} tensors missing, "
            f"{len(unexpected)} unused, {len(other)} of another shape, e.g. {some}): build it with the "
            f"model_args of its {HUB_CONFIG}"
        )
    model.load_state_dict(state, strict=False)


def read_hub_config(path: str | Path) -> dict[str, Any]:
    """An exported config.json, or a one-line error naming it."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except ValueError as err:  # (a UnicodeDecodeError too)
        raise ValueError(
            f"{path} is not valid JSON ({err}): export the run again (srblock export RUN --hf DIR)"
        ) from None
    again = "export the run again (srblock export RUN --hf DIR)"
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not an srblock export (it holds no settings): {again}")
    kinds = {"pretrained_cfg": dict, "model_args": dict, "label_names": list, "srblock": dict}
    wrong = [k for k, kind in kinds.items() if not isinstance(config.get(k, kind()), kind)]
    if wrong:
        what = f"its {', '.join(wrong)} is not a {kinds[wrong[0]].__name__}"
        raise ValueError(f"{path} is not an srblock export ({what}): {again}")
    return config


def hub_config_beside(file: str | Path) -> dict[str, Any]:
    """The config.json beside exported weights (empty if there is none: a bare weights file)."""
    path = hub_weights(file).parent / HUB_CONFIG
    return read_hub_config(path) if path.is_file() else {}


# what an exported pretrained_cfg says about the images (timm's data config reads these)
DATA_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation")


def hub_data_cfg(
    config: dict[str, Any], num_classes: int | None = None, in_chans: int | None = None
) -> dict[str, Any]:
    """An export's image settings and label names, as timm's pretrained_cfg holds them (tuples),
    so that timm's data pipeline prepares images as the run did; the label names only where the
    head keeps the export's classes. For a model of `in_chans` other channels than the export's,
    the input size says them, and each channel is normalised by the average of the export's means
    and stds (a grey export's one value for every colour channel)."""
    shared = config.get("pretrained_cfg", {})
    out = {k: tuple(v) if isinstance(v, list) else v for k, v in shared.items() if k in DATA_KEYS}
    if in_chans is not None and "input_size" in out and out["input_size"][0] != in_chans:
        out["input_size"] = (in_chans, *out["input_size"][1:])
        if "mean" in out and "std" in out:
            out["mean"], out["std"] = channel_stats(out["mean"], out["std"], in_chans)
    if config.get("label_names") and num_classes in (None, config.get("num_classes")):
        out["label_names"] = tuple(config["label_names"])
    return out
