"""What a setting is, said once: its default, help, type, allowed range or choices, and the facts
callers need about it (which runs it applies to, whether it names a run folder, whether two runs
that differ in it are the same experiment), carried in its dataclass field's metadata.

`SRSpec` (the block's settings) and the run configs (config/) declare their fields with
`setting`; validation (`check`), `--help`, folder names, comparisons and the docs' key table are
read off those fields.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROLES = ("experiment", "sr", "execution")  # what a run computes; its SR block; how it runs


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    range: str | None = None,
    choices: tuple | None = None,
    role: str = "experiment",
    slug: str | None = None,
    default_factory: Any = dataclasses.MISSING,
    **facts: Any,
) -> Any:
    """A dataclass field with its facts: `range` an interval such as "[1, inf)" (a list's every
    item), `choices` its allowed values, `role` one of ROLES (`execution`: how a run is run, which
    may change on resume and is never compared), `slug` its mark in a run folder's name where it
    differs from its default."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    metadata = {"help": help, "range": range, "choices": choices, "role": role, "slug": slug, **facts}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def facts(field: dataclasses.Field) -> Mapping[str, Any]:
    """A field's facts (empty for a field declared without `setting`)."""
    return field.metadata


def describe(tp: Any) -> str:
    """A type as an error message names it: "an int", "a number or null", "a list of numbers"."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return f"{describe(args[0])} or null"
    if typing.get_origin(tp) is list:
        return f"a list of {describe(args[0])}s"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def convert(value: Any, tp: Any) -> Any:
    """`value` as type `tp` (an int is a number, YAML's "1e-3" string is too), or None where it
    does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return convert(value, next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return None
        items = [convert(v, typing.get_args(tp)[0]) for v in value]
        return None if any(i is None for i in items) else items
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            return None
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    return None


def in_interval(interval: str, value: float) -> bool:
    """Whether `value` lies in an interval written "[low, high)" (inf allowed)."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return above and below


def check(name: str, field: dataclasses.Field, tp: Any, value: Any, source: str) -> Any:
    """`value` checked against a field's type, range and choices (converted where a YAML or
    command-line value needs it), or a one-line ValueError that names `source` and the rule."""
    checked = convert(value, tp)
    optional = type(None) in typing.get_args(tp)
    if checked is None and value is not None:
        raise ValueError(f"{source}: {name} takes {describe(tp)}, got {value!r}")
    if checked is None and not optional:
        raise ValueError(f"{source}: {name} takes {describe(tp)}, not null")
    meta = facts(field)
    interval = meta.get("range")
    if interval and checked is not None:
        for item in checked if isinstance(checked, list) else [checked]:
            if not in_interval(interval, item):
                raise ValueError(f"{source}: {name} must be in {interval}, got {checked!r}")
    choices = meta.get("choices")
    items = checked if isinstance(checked, list) else [checked]  # (a list's every item)
    for item in items if choices and checked is not None else []:
        if item not in choices:
            raise ValueError(f"{source}: {name} must be one of {', '.join(map(str, choices))}, got {item!r}")
    return checked


def fields_with(cls: type, **wanted: Any) -> list[dataclasses.Field]:
    """The fields of dataclass `cls` whose facts match `wanted` (e.g. role="execution")."""
    return [f for f in dataclasses.fields(cls) if all(facts(f).get(k) == v for k, v in wanted.items())]


def parse_hw(text: str, key: str) -> tuple[int, int]:
    """`HxW` (or one number for a square) as (height, width), or a one-line ValueError."""
    parts = str(text).lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{key} must be HxW of positive ints, e.g. 512x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


def text_of_bool(value: Any) -> Any:
    """`compile: true` in YAML (a bool) as the choice "true"."""
    return str(value).lower() if isinstance(value, bool) else value


def text_of_int(value: Any) -> Any:
    """`crop_size: 512` in YAML (an int) as the text "512" (a square)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def file_or_true(value: Any) -> Any:
    """`pretrained`: true (the published weights), false (none) or a file, made absolute so that it
    is found from any working folder."""
    if isinstance(value, bool):
        return "true" if value else None
    if isinstance(value, str) and value != "true":
        return str(Path(value).expanduser().resolve())
    return value
