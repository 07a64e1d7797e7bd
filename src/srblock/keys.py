"""Checking a run's keys and values: from a recipe, `--set`, a sweep, `srblock.fit` or a run folder's
config.yaml, each key is checked by the facts its field declares (config/, schema.py), and the
values of one run are built into the config class its data set's task needs."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

import yaml

from .config import CONFIGS, ClassifyConfig, FilesConfig, SegmentConfig, TensorsConfig, TrainConfig, in_spec
from .data import DATASETS
from .recipes import load_yaml
from .schema import check
from .spec import renamed, spec_from_keys

FIELDS = {k: f for cls in CONFIGS for k, f in cls.key_fields().items()}
KEYS = tuple(FIELDS)  # every key any run may set
_TYPES = {k: v for cls in CONFIGS for k, v in cls.key_types().items()}


def _names(cls: type[TrainConfig]) -> list[str]:
    return list(cls.key_fields())


def config_class(dataset: str) -> type[TrainConfig]:
    """The config class of a data set's runs: by its task, and for classification by where its images lie."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    if info.task == "segment":
        return SegmentConfig
    return TensorsConfig if info.in_memory else FilesConfig


def key_groups() -> dict[str, list[str]]:
    """The keys by the runs they apply to (for --help): every run's, then each task's own."""
    common = _names(TrainConfig)
    groups = {"every run": common, "classification": [k for k in _names(ClassifyConfig) if k not in common]}
    for cls in CONFIGS:
        groups[cls.TASK] = [k for k in _names(cls) if k not in _names(cls.__mro__[1])]
    return groups


def set_value(
    values: dict[str, Any],
    key: str,
    value: Any,
    source: str,
    *,
    old_names: str = "warn",
    filled: bool = False,
) -> None:
    """Checks one key and its value against its field's facts and stores it, or raises a one-line
    ValueError. A key's name of an earlier release is read as today's (`old_names="warn"` says so
    in a FutureWarning; "quiet" for the config.yaml of runs written by then). A key srblock fills
    in (a folder's `classes`) is refused unless `filled` (a run's own config.yaml)."""
    key = renamed(key, source, warn=old_names == "warn")
    if key not in FIELDS:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(KEYS)}")
    field = FIELDS[key]
    if field.metadata.get("filled_from") and not filled:
        raise ValueError(
            f"{source}: {key} is not set but read from {field.metadata['filled_from']}: leave it out"
        )
    parse = field.metadata.get("parse")
    checked = check(key, field, _TYPES[key], parse(value) if parse else value, source)
    valid = field.metadata.get("valid")
    if valid and checked is not None:
        try:
            ok = valid(checked)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        if not ok:
            raise ValueError(f"{source}: {key} {field.metadata.get('rule', 'is not valid')}, got {checked!r}")
    values[key] = checked


def parse_set(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """`key=value` strings (of `flag`) as a dict, each key checked and under today's name; values
    are read as YAML (0.1, true, null, [60, 120])."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {item!r}: write key=value, e.g. {flag} lr=0.05")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            value = text
        if key.strip() == "crop_size":
            value = text  # HxW as written: YAML would read 0x100 as a hexadecimal number
        set_value(values, key.strip(), value, f"{flag} {item}")
    return values


def build_config(values: dict[str, Any], source: str, *, other_tasks: str = "refuse") -> TrainConfig:
    """The config of checked `values`, of the class its data set's task needs, with the model's P
    filled in where an SR block is asked for without one. What the model is (its task, smallest
    batch, P) is read from the registry's facts: no model is built.

    `other_tasks="drop"` leaves out keys of other tasks instead of refusing them: config.yaml
    files written before configs were split by task list every key of every task.
    """
    dataset = values.get("dataset", TrainConfig.dataset)
    cls = config_class(dataset)
    own = set(_names(cls))
    foreign = [k for k in values if k not in own]
    if foreign and other_tasks == "refuse":
        raise ValueError(
            f"{source}: {', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to "
            f"{dataset} runs ({cls.TASK}); their keys: {', '.join(_names(cls))}"
        )
    values = {k: v for k, v in values.items() if k in own}
    model = values.get("model", cls.model)
    from .models import model_facts  # (the zoo registered: its facts are declared there)

    facts = model_facts(model)
    batch = values.get("batch_size", cls.batch_size)
    if facts.segments != cls.SEGMENTS:
        kind = "a segmentation model" if facts.segments else "a classification model"
        raise ValueError(
            f"{source}: {model} is {kind}, but {dataset} runs are {cls.TASK}: choose a model for that task "
            "(srblock.list_models())"
        )
    if batch < facts.min_train_batch:
        raise ValueError(
            f"{source}: batch_size={batch} cannot train {model} (per process): its image-pooling "
            f"BatchNorm sees one value per channel; set batch_size={facts.min_train_batch} or more"
        )
    if values.get("sr_memory_init", "zeros") != "zeros" and not DATASETS[dataset].in_memory:
        raise ValueError(
            f"{source}: sr_memory_init={values['sr_memory_init']} starts the memory from images held in "
            f"memory (CIFAR, Fashion-MNIST); {dataset} runs read files: leave sr_memory_init at zeros"
        )
    if dataset == "folder" and values.get("classes") is None and values.get("data_dir"):
        from .data.folder import folder_classes  # the classes are the data's: read once, then recorded

        values["classes"] = list(folder_classes(values["data_dir"]))
    spec = {k: values.pop(k) for k in list(values) if in_spec(FIELDS[k])}
    sr = spec_from_keys(spec, source)
    if values.get("sr_stage") is None:
        sr = dataclasses.replace(sr, memory_blocks=None)  # no SR block: no P
    elif sr.memory_blocks is None:
        sr = dataclasses.replace(sr, memory_blocks=facts.sr_default_blocks)
    return cls(**values, sr=sr)


def recipe_values(recipe: str) -> dict[str, Any]:
    """The checked fields of a recipe (shipped name or YAML path)."""
    data = load_yaml(recipe)
    if "runs" in data:
        raise ValueError(f"{recipe} is a sweep, not a recipe: run it with `srblock sweep {recipe}`")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key != "description":
            set_value(values, key, value, f"recipe {recipe}")
    return values


def make_config(
    recipe: str,
    overrides: dict[str, Any] | None = None,
    source: str | None = None,
    explicit: Iterable[str] | None = None,
) -> TrainConfig:
    """A recipe with overrides applied on top (both already checked by set_value); `source` names
    where the overrides come from in an error (default: the recipe). The keys in `explicit` (the
    overrides' by default) are the user's choice for this run: one that does nothing is refused."""
    values = {**recipe_values(recipe), **(overrides or {})}
    source = source or f"recipe {recipe} with its overrides"
    cfg = build_config(values, source)
    chosen = (overrides or {}) if explicit is None else explicit
    check_applies(cfg, {renamed(k, source, warn=False): values.get(k) for k in chosen}, source)
    return cfg


NAMED_ELSEWHERE = ("dataset", "model", "attn", "reg", "sr_stage", "seed", "classes")  # group, name, filled


def set_changes(cfg: TrainConfig, overrides: Iterable[str], before: dict[str, Any]) -> dict[str, Any]:
    """The keys of `overrides` (a --set's) that changed `cfg` from what it would have been (`before`:
    the recipe's values, or a sweep row's; a key absent there is at its default) and that its folder
    name does not say otherwise: they name the folder (cfg.folder_name), in the config's order,
    so that exploring a setting trains beside the recipe's run rather than being refused."""
    fields, values = cfg.key_fields(), cfg.keys()
    skip = {*NAMED_ELSEWHERE, *cfg.execution_keys(), *(k for k, f in fields.items() if in_spec(f))}
    chosen = {renamed(k, "--set", warn=False) for k in overrides}
    return {
        k: values[k]
        for k, field in fields.items()
        if k in chosen and k not in skip and values[k] != before.get(k, _default(field))
    }


def _default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def check_applies(cfg: TrainConfig, chosen: dict[str, Any], source: str, has_sr: bool | None = None) -> None:
    """Refuses a key the user set that does nothing in `cfg` (an SR key without an SR block, a
    regulariser's rate without one...), which would otherwise be recorded as if it had acted.
    A recipe's or a sweep's shared keys are not the user's choice for each run: not checked here."""
    own = cfg.key_fields()  # (a name two config classes declare: cfg's own)
    has_sr = cfg.sr_stage is not None if has_sr is None else has_sr
    for key, value in chosen.items():
        if key not in own or value == _default(own[key]):  # the default changes nothing: no harm
            continue
        meta = own[key].metadata
        needs = meta.get("needs")
        if meta.get("role") == "sr" and key != "sr_stage" and not has_sr:
            needs = (lambda c: False, "does nothing without an SR block: add one with sr_stage=M")
        if needs and not needs[0](cfg.sr if in_spec(own[key]) else cfg):
            shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            raise ValueError(f"{source}: {key}={shown} {needs[1]}, or leave {key} out")


def config_from_mapping(data: Any, source: str) -> TrainConfig:
    """A run's config from what its config.yaml holds (a mapping of key: value), every value checked;
    the key names of earlier releases are read quietly (the run was written with them)."""
    if not isinstance(data, dict) or not data:
        raise ValueError(
            f"{source} is not a run's config (a YAML mapping of key: value): "
            "restore it or delete that run folder"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        set_value(values, key, value, source, old_names="quiet", filled=True)
    return build_config(values, source, other_tasks="drop")


def key_rows() -> list[dict[str, str]]:
    """Every key with its facts, one row each (`srblock recipes --keys`, docs/keys.md)."""
    groups = key_groups()
    rows = []
    for key, field in FIELDS.items():
        meta = field.metadata
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        allowed = meta.get("range") or (", ".join(map(str, meta["choices"])) if meta.get("choices") else "")
        runs = "; ".join(group for group, keys in groups.items() if key in keys)  # (crop_padding: two)
        notes = {"execution": "how the run runs: may change on resume", "sr": "SR block"}.get(
            meta.get("role"), ""
        )
        if meta.get("slug"):
            notes += f"; in the folder name as `{meta['slug']}`"
        rows.append(
            {
                "key": f"`{key}`",
                "runs": runs,
                "default": "null"
                if default is None
                else str(default).lower()
                if isinstance(default, bool)
                else str(default),
                "allowed": allowed,
                "notes": notes,
                "what": meta.get("help", ""),
            }
        )
    return rows
