"""The recipes and sweeps shipped as YAML in srblock/recipes/, and a user's own YAML files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

RECIPE_DIR = Path(__file__).parent / "recipes"


def list_recipe_files() -> list[str]:
    """Names of the shipped recipe and sweep files, without .yaml."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_yaml(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped recipe by name, or any YAML file by path, as a dict."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"no recipe {str(name_or_path)!r}: give a YAML file's path or one of: "
            f"{', '.join(list_recipe_files())}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a YAML mapping (key: value lines)")
    return data


TABLES = ("cifar100", "cifar10", "imagenet", "cityscapes")  # the recipes whose sweeps are the paper's tables


def sweeps_for(recipe: str) -> list[str]:
    """The names of the shipped sweeps (paper tables) that run `recipe`, in file order."""
    return [
        name
        for name in list_recipe_files()
        if (data := load_yaml(name)).get("recipe") == recipe and "runs" in data
    ]


def group_name(recipe: str) -> str:
    """The folder under --out for a recipe's or a sweep's runs: its name, or a YAML file's stem."""
    return Path(recipe).stem if os.sep in recipe or recipe.endswith((".yaml", ".yml")) else recipe
