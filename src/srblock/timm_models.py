"""srblock's classification zoo in timm's registry, as `srblock_<name>`, so that after
`import srblock` timm's own tools build it: `timm.create_model("srblock_resnet18_cifar",
sr_stage=3, num_classes=100)`, or timm's `train.py --model srblock_resnet18_cifar
--model-kwargs sr_stage=3`.

Each model carries a `pretrained_cfg` with its input size (32 x 32 for the CIFAR models), so
timm's data pipeline resizes to what the model was made for. No weights are published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model as timm_register
from torch import nn

from .registry import create_model, list_models, model_facts

PREFIX = "srblock_"
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")  # timm's, meaningless here
# timm's train.py passes these with a default value: ours take none, so only that default is accepted
_TIMM_DEFAULTS = {"drop_rate": 0.0, "drop_path_rate": None, "drop_block_rate": None, "global_pool": None}


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"{PREFIX}{name} has no published weights: pass pretrained=False, or a checkpoint_path"
            )
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        for key, default in _TIMM_DEFAULTS.items():
            if key in kwargs and kwargs[key] not in (default, None):
                raise ValueError(
                    f"{PREFIX}{name} takes no {key} (got {kwargs[key]}); leave it at its default"
                )
            kwargs.pop(key, None)
        model = create_model(name, **kwargs)
        size = tuple(getattr(model, "default_input_size", (3, 224, 224)))
        small = size[-1] <= 64
        model.pretrained_cfg = {
            "architecture": f"{PREFIX}{name}",
            "input_size": size,
            "num_classes": kwargs.get("num_classes"),
            "mean": (0.5,) * size[0] if small else (0.485, 0.456, 0.406)[: size[0]],
            "std": (0.25,) * size[0] if small else (0.229, 0.224, 0.225)[: size[0]],
            "crop_pct": 1.0 if small else 0.875,
            "interpolation": "bilinear",
        }
        model.default_cfg = model.pretrained_cfg
        return model

    build.__name__ = build.__qualname__ = f"{PREFIX}{name}"
    build.__module__ = __name__
    build.__doc__ = f"srblock's {name} (an SR block after `sr_stage` when given), built by timm."
    return build


def register_zoo() -> list[str]:
    """Registers every classification model of srblock's zoo with timm; returns the names."""
    names = []
    for name in list_models():
        if not model_facts(name).segments:
            globals()[f"{PREFIX}{name}"] = timm_register(_entrypoint(name))
            names.append(f"{PREFIX}{name}")
    return names


TIMM_NAMES = register_zoo()
