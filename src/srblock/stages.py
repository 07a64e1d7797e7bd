"""Which modules of a network are its stages (the paper's M = 1, 2, ...): srblock's zoo, torchvision
ResNets and VGGs, and timm CNNs that report theirs (`feature_info`); or any module, by name."""

from __future__ import annotations

import re

from torch import nn

# feature_info entries that are a network's stem, not one of its stages
_STEM = re.compile(r"^(stem.*|act1|bn1|conv1|conv_stem|bn_stem|norm0)$")


def _is_stem(module_name: str) -> bool:
    return bool(_STEM.match(module_name.rsplit(".", 1)[-1]))


def _resnet_stages(model: nn.Module) -> list[str] | None:
    """layer1..layerN of a torchvision or timm ResNet (also as a segmentation backbone)."""
    for prefix in ("", "backbone."):
        try:
            owner = model.get_submodule(prefix.rstrip(".")) if prefix else model
        except AttributeError:
            continue
        names = []
        while isinstance(getattr(owner, f"layer{len(names) + 1}", None), nn.Module):
            names.append(f"{prefix}layer{len(names) + 1}")
        if len(names) >= 2:
            return names
    return None


def _vgg_stages(model: nn.Module) -> list[str] | None:
    """The max-pools of a flat VGG `features` (torchvision, timm): stage M ends at the M-th."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        return None
    children = list(features.named_children())
    if not children or any(next(m.children(), None) is not None for _, m in children):
        return None  # not flat: some other network (DenseNet, our own VGG)
    pools = [f"features.{n}" for n, m in children if isinstance(m, nn.MaxPool2d)]
    return pools or None


def _feature_info_stages(model: nn.Module) -> list[str] | None:
    """The stages a timm CNN (or our zoo) reports through `feature_info`, without the stem."""
    info = getattr(model, "feature_info", None)
    if not info:
        return None
    entries = info.info if hasattr(info, "info") else info
    names = [entry["module"] for entry in entries if not _is_stem(entry["module"])]
    return names or None


def stage_names(model: nn.Module) -> list[str]:
    """Qualified names of the modules whose outputs are the network's stages, stage 1 first."""
    for finder in (_resnet_stages, _vgg_stages, _feature_info_stages):
        names = finder(model)
        if names:
            return names
    raise ValueError(
        f"cannot split {type(model).__name__} into stages: add_sr knows srblock's zoo, torchvision "
        "ResNets/VGGs and timm CNNs with feature_info; pass stage as a module name instead "
        "(e.g. stage='features.6')"
    )


def resolve_stage(model: nn.Module, stage: int | str) -> str:
    """The module name of `stage` (1-based int, or a module name), or a ValueError naming choices."""
    if isinstance(stage, str):
        if not stage.strip():
            raise ValueError(
                f"stage is empty: give a stage number or a module name; stages are {describe_stages(model)}"
            )
        try:
            model.get_submodule(stage)
        except AttributeError:
            raise ValueError(
                f"{type(model).__name__} has no module named {stage!r}; stages are {describe_stages(model)}"
            ) from None
        return stage
    names = stage_names(model)
    if isinstance(stage, bool) or not isinstance(stage, int) or not 1 <= stage <= len(names):
        raise ValueError(
            f"stage {stage!r} does not exist in {type(model).__name__}: choose 1..{len(names)} "
            f"({describe_stages(model)})"
        )
    return names[stage - 1]


def describe_stages(model: nn.Module) -> str:
    try:
        names = stage_names(model)
    except ValueError:
        return "unknown for this network"
    return ", ".join(f"{i} = {name}" for i, name in enumerate(names, start=1))
