"""A sweep (one of the paper's tables) as configurations: its recipe, its shared `set`, each row's fields.

One expansion serves `srblock sweep` (which trains every row x seed) and `srblock params --table`
(which counts every row's parameters), so both read a sweep file the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig, with_seeds
from .keys import check_applies, make_config, parse_set, recipe_values, set_changes, set_value
from .recipes import load_yaml
from .spec import renamed

ROW_LABELS = ("name", "paper")  # a row's keys that describe it rather than configure it
SWEEP_KEYS = ("description", "recipe", "table", "seeds", "set", "runs")  # a sweep file's own keys


@dataclass(frozen=True)
class SweepRow:
    """One row of a sweep: its name and place in the table, the paper's numbers, its config, its seeds."""

    name: str
    index: int
    table: str | None
    paper: dict[str, Any] | None
    config: TrainConfig
    seeds: tuple[int, ...]
    changes: dict[str, Any]  # what the command's --set changed of the row: in its folder's name

    def extra(self) -> dict[str, Any]:
        """What result.json records of the row, so `srblock table` can rebuild the paper's layout."""
        cfg, changed = self.config, ", ".join(f"{k}={v}" for k, v in self.changes.items())
        return {
            "name": f"{self.name} ({changed})" if changed else self.name,  # (--set: a row of its own)
            "row": self.index,
            "table": self.table,
            "paper": self.paper,
            "M": cfg.sr_stage,
            "P": cfg.sr.memory_blocks,
        }

    def configs(self, seeds: list[int] | None = None) -> list[TrainConfig]:
        """The row's config once per seed: `seeds` if given, else the sweep's own."""
        return with_seeds(self.config, list(seeds or self.seeds))


def expand_sweep(sweep: str, overrides: dict[str, Any] | None = None) -> list[SweepRow]:
    """Every row of a sweep (shipped name or YAML path), each row's fields on top of the sweep's
    `set` on top of its recipe, and `overrides` (already checked) on top of all."""
    data = load_yaml(sweep)
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if "runs" not in data and not any(k in data for k in SWEEP_KEYS[1:]):  # recipe keys only
        raise ValueError(f"{sweep} is a recipe, not a sweep: run it with `srblock train {sweep}`")
    if unknown:  # a misspelt `seeds` or `set` would train something else without a word
        close = difflib.get_close_matches(unknown[0], SWEEP_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{sweep}: unknown key {unknown[0]!r}{hint}; a sweep holds {', '.join(SWEEP_KEYS)} (a run's "
            "keys go in `set` or in a row)"
        )
    if "runs" not in data or "recipe" not in data:
        missing = "runs (the rows to train)" if "runs" not in data else "recipe (what the rows start from)"
        raise ValueError(f"{sweep}: a sweep needs {missing}")
    runs, shared, seeds = data["runs"], data.get("set", {}), data.get("seeds", [0, 1, 2, 3, 4])
    if not isinstance(runs, list) or not runs or not all(isinstance(row, dict) for row in runs):
        raise ValueError(
            f"{sweep}: runs must be a list of rows, each a mapping (- {{name: ..., key: value}})"
        )
    if not isinstance(shared, dict):
        raise ValueError(f"{sweep}: set must be a mapping of key: value")
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int and s >= 0 for s in seeds):
        raise ValueError(f"{sweep}: seeds must be a list of non-negative ints, e.g. [0, 1, 2], got {seeds!r}")
    rows, recipe = [], recipe_values(data["recipe"])  # (what --set changes of a row is named)
    for index, row in enumerate(runs):
        source = f"{sweep} row {row.get('name', index)!r}"
        values: dict[str, Any] = {}
        for key, value in {**shared, **row}.items():
            if key == "seed":  # every row trains the sweep's seeds: a seed here would be dropped
                raise ValueError(f"{source}: seed is not a row's key: list the seeds in the sweep's `seeds`")
            if key not in ROW_LABELS:
                set_value(values, key, value, source)
        own = [
            renamed(k, source, warn=False) for k in row if k not in ROW_LABELS
        ]  # the row's choices; `set` and overrides are shared
        cfg = make_config(data["recipe"], {**values, **(overrides or {})}, source=source, explicit=own)
        changes = set_changes(cfg, overrides or {}, {**recipe, **values})
        name, paper = row.get("name", f"row {index}"), row.get("paper")
        rows.append(SweepRow(name, index, data.get("table"), paper, cfg, tuple(seeds), changes))
    for key, value in (overrides or {}).items():  # shared: refused only where it acts in no row
        refusals = []
        for row in rows:
            try:
                check_applies(row.config, {key: value}, f"{sweep} --set {key}, in every row")
            except ValueError as err:
                refusals.append(err)
        if rows and len(refusals) == len(rows):
            raise refusals[0]
    return rows


def select_rows(rows: list[SweepRow], selectors: list[str], sweep: str) -> list[SweepRow]:
    """The rows `--rows` names, for splitting a sweep by hand: indices (0-based, in the file's
    order) and key=value tests (`name=R18`, `model=resnet18_cifar`, `sr_stage=3`); a row is kept
    when it is among the indices given (if any) and passes every key's test (a key given twice
    takes either value: `name=R18 name=R34`)."""
    indices, tests = set(), {}  # tests: key -> the values it may take (a key given twice: either)
    for selector in selectors:
        key, sep, text = selector.partition("=")
        if not sep:
            if not selector.isdigit() or int(selector) >= len(rows):
                raise ValueError(
                    f"--rows {selector}: give row indices 0..{len(rows) - 1} of {sweep} or key=value tests"
                )
            indices.add(int(selector))
            continue
        if key == "name":
            tests.setdefault(key, []).append(text)
            continue
        [(key, value)] = parse_set([selector], "--rows").items()  # read as --set reads it
        tests.setdefault(key, []).append(value)

    def passes(row: SweepRow) -> bool:
        return all(
            (row.name if key == "name" else getattr(row.config, key, None)) in values
            for key, values in tests.items()
        )

    chosen = [row for row in rows if (not indices or row.index in indices) and passes(row)]
    if not chosen:
        names = ", ".join(f"{r.index} {r.name}" for r in rows)
        raise ValueError(f"--rows {' '.join(selectors)}: no row of {sweep} is chosen; its rows: {names}")
    return chosen
