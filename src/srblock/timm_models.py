"""srblock's classification zoo in timm's registry, as `srblock_<name>`, so that after
`import srblock` timm's own tools build it: `timm.create_model("srblock_resnet18_cifar",
sr_stage=3, num_classes=100)`. timm's scripts do not import srblock: run_timm.py runs one with the
zoo registered (`python -m srblock.run_timm train.py DATA --model srblock_resnet18_cifar
--model-kwargs sr_stage=3`; likewise validate.py and inference.py).

Each model carries a `pretrained_cfg` with its input size (32 x 32 for the CIFAR models), so
timm's data pipeline resizes to what the model was made for. No weights are published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model as timm_register
from timm.models._features import FeatureListNet
from torch import nn

from .models import list_models, model_arguments, model_facts
from .pretrained import first_conv_key
from .spec import RENAMED_KEYS, SPEC_KEYS

PREFIX = "srblock_"
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")  # timm's, meaningless here
# timm's train.py passes these with a default value: ours take none, so only that default is accepted
_TIMM_DEFAULTS = {"drop_rate": 0.0, "drop_path_rate": None, "drop_block_rate": None}


def _imagenet_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std for `channels` channels (their averages where not 3, as timm does for a
    grey model made from an RGB one)."""
    from .data.catalog import DATASETS

    return DATASETS["imagenet"].stats(channels)


def _pretrained_cfg(name: str, model: nn.Module, num_classes: int | None) -> dict[str, Any]:
    """timm's pretrained_cfg, read off the built model: input size, pooled size, first conv and
    classifier names, mean and std (Fashion-MNIST's and CIFAR's scale for the small models)."""
    size = tuple(getattr(model, "default_input_size", (3, 224, 224)))
    small = size[-1] <= 64
    mean, std = ((0.5,) * size[0], (0.25,) * size[0]) if small else _imagenet_stats(size[0])
    reduction = model.feature_info[-1]["reduction"]
    classifier = model.get_classifier()
    return {
        "architecture": f"{PREFIX}{name}",
        "input_size": size,
        "pool_size": (size[1] // reduction, size[2] // reduction),
        "num_classes": num_classes if num_classes is not None else model.num_classes,
        "first_conv": first_conv_key(model).removesuffix(".weight"),
        "classifier": next(n for n, m in model.named_modules() if m is classifier),
        "mean": mean,
        "std": std,
        "crop_pct": 1.0 if small else 0.875,
        "interpolation": "bilinear",
        "fixed_input_size": False,
        "license": "mit",  # the project's (LICENSE, pyproject)
    }


def _weights_file(pretrained_cfg: Any, overlay: Any) -> str | None:
    """The weights file (or exported folder) timm's pretrained_cfg or its overlay names, if any."""
    for source in (overlay, pretrained_cfg):
        file = source.get("file") if isinstance(source, dict) else getattr(source, "file", None)
        if file:
            return str(file)
    return None


def _check_keywords(name: str, kwargs: dict[str, Any]) -> None:
    """timm's convention: a keyword the model does not take is a TypeError."""
    valid = [*model_arguments(name), "sr_stage", "sr", "input_size", *SPEC_KEYS, *RENAMED_KEYS]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(
            f"{PREFIX}{name}() got unexpected keyword arguments {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(valid)}"
        )


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from .factory import create_model  # (here: the zoo may join timm's registry while it imports)
        from .hub import hub_config_beside, hub_data_cfg, load_hub_weights

        file = _weights_file(kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
        if pretrained and file is None:
            raise ValueError(
                f"{PREFIX}{name} has no published weights: pass pretrained=False, a checkpoint_path, or "
                "pretrained_cfg_overlay=dict(file=DIR) with a folder from `srblock export RUN --hf DIR`"
            )
        for key in (*_TIMM_ONLY, "pretrained_model_args"):
            kwargs.pop(key, None)
        exported = hub_config_beside(file) if pretrained else {}  # (a bare weights file has none)
        for key, value in exported.get("model_args", {}).items():  # the defaults: its weights fit them
            kwargs.setdefault(key, value)
        size, chans = kwargs.get("input_size"), kwargs.get("in_chans")
        if size is not None and chans is not None and size[0] != chans:
            # an export's (or local-dir's) size, for a model of other channels: the memory's H x W
            kwargs["input_size"] = (chans, *size[1:])
        for key, default in _TIMM_DEFAULTS.items():
            if key in model_arguments(name):  # (VGG's drop_rate: timm's --drop reaches it)
                continue
            if key in kwargs and kwargs[key] not in (default, None):
                raise ValueError(
                    f"{PREFIX}{name} takes no {key} (got {kwargs[key]}); leave it at its default"
                )
            kwargs.pop(key, None)
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        global_pool = kwargs.pop("global_pool", None)
        features_only, out_indices = kwargs.pop("features_only", False), kwargs.pop("out_indices", None)
        _check_keywords(name, kwargs)
        model = create_model(name, **kwargs)
        if global_pool not in (None, "avg"):  # (a new head: the pooled features' width may change)
            model.reset_classifier(model.num_classes, global_pool)
        cfg = _pretrained_cfg(name, model, kwargs.get("num_classes"))
        if pretrained:
            load_hub_weights(model, file, f"{PREFIX}{name}", cfg["classifier"])
        # the export's mean, std, sizes and labels: timm's data config prepares images as the run did
        cfg.update(hub_data_cfg(exported, kwargs.get("num_classes"), model.in_chans))
        if features_only:  # timm's wrapper: a list of the stages' maps (an SR block inside its stage)
            flatten = not any("." not in info["module"] for info in model.feature_info)
            indices = tuple(range(len(model.feature_info))) if out_indices is None else out_indices
            model = FeatureListNet(model, out_indices=indices, flatten_sequential=flatten)
        model.pretrained_cfg = model.default_cfg = cfg
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
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


TIMM_NAMES = register_zoo() if __name__ != "__main__" else []  # (once: as `import srblock` loads it)


if __name__ == "__main__":  # the command of earlier releases: the runner is run_timm.py
    import runpy

    runpy.run_module("srblock.run_timm", run_name="__main__")
