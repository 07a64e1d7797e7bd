"""Where a run lives and what it leaves behind: config.yaml, metrics.csv, result.json.

Layout: OUT/<recipe or sweep>/<configuration>/seed<k>/, so the seeds of one configuration
are siblings and `srblock table` can average them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import write_atomic
from .config import TrainConfig, set_value

CONFIG_FILE, METRICS_FILE, RESULT_FILE = "config.yaml", "metrics.csv", "result.json"
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
SEG_METRIC_COLUMNS = ("iteration", "lr", "train_loss", "val_miou", "val_macc", "seconds")


def config_slug(cfg: TrainConfig) -> str:
    """A folder name for a configuration: model, attention, regulariser and SR placement."""
    parts = [cfg.model] + [p for p in (cfg.attn, cfg.reg) if p]
    if cfg.sr_stage is not None:
        parts.append(f"sr{cfg.sr_stage}p{cfg.sr_blocks}h{cfg.sr_hidden}")
    return "-".join(str(p).replace("/", "_").replace(" ", "") for p in parts)


def run_dir(out: Path, group: str, cfg: TrainConfig, name: str | None = None) -> Path:
    return Path(out) / group / (name or config_slug(cfg)) / f"seed{cfg.seed}"


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def read_config(folder: Path) -> TrainConfig:
    """The config a run folder was started with."""
    data = yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
    values: dict[str, Any] = {}
    for key, value in data.items():
        set_value(values, key, value, str(folder / CONFIG_FILE))
    return TrainConfig(**values)


def claim_run_dir(folder: Path, cfg: TrainConfig) -> None:
    """Writes config.yaml in a new run folder; an existing folder must hold the same config."""
    path = folder / CONFIG_FILE
    if path.exists():
        old = read_config(folder).identity()
        new = cfg.identity()
        changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
        if changed:
            raise ValueError(
                f"{folder} holds a run of another configuration ({'; '.join(changed)}): "
                "choose another --out, or delete that folder"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(cfg.identity(), sort_keys=False))


class MetricsLog:
    """metrics.csv, one row per epoch (or evaluation); a resumed run first drops the rows after its
    checkpoint, those whose first column (epoch, iteration) is not below `start`."""

    def __init__(self, path: Path, start: int, columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
        self.path, self.columns = path, columns
        rows = []
        if path.exists():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if float(r[columns[0]]) < start]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)


def read_metrics(folder: Path) -> list[dict[str, float]]:
    with (folder / METRICS_FILE).open() as f:
        return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in csv.DictReader(f)]


def write_result(folder: Path, result: dict[str, Any]) -> None:
    write_text_atomic(folder / RESULT_FILE, json.dumps(result, indent=2))


def is_finished(folder: Path) -> bool:
    return (folder / RESULT_FILE).is_file()


def unfinished_runs(root: Path) -> list[Path]:
    """Run folders under `root` that were started (config.yaml) and have no result.json yet."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG_FILE) if not is_finished(p.parent))
