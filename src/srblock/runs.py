"""Where a run lives, what it leaves behind, and reading a finished run back (no Lightning needed).

Layout: OUT/<recipe or sweep>/<configuration>/seed<k>/, so the seeds of one configuration are
siblings and `srblock table` can average them. A run folder holds config.yaml (the run's
fields, and where its data lay), data.json (the data's fingerprint: splits.py), metrics.csv,
tensorboard/, last.ckpt, best.ckpt (the tested checkpoint), result.json and, for segmentation,
class_iou.md; a run stopped because its training diverged holds diverged.txt instead of result.json.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch
import yaml

from .checkpoint import TMP_SUFFIX, write_text_atomic
from .config import TrainConfig
from .spec import SRSpec

CONFIG_FILE, METRICS_FILE, RESULT_FILE = "config.yaml", "metrics.csv", "result.json"
LAST_CKPT, BEST_CKPT, CLASS_IOU_FILE = "last.ckpt", "best.ckpt", "class_iou.md"
DIVERGED_FILE = "diverged.txt"  # why a run was stopped: it never counts as finished
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
SEG_METRIC_COLUMNS = ("iteration", "lr", "train_loss", "val_miou", "val_macc", "seconds")


def config_slug(cfg: TrainConfig) -> str:
    """A folder name for a configuration: model (and its layers), SR placement, and how the memory
    trains where it is not the paper's way (the `slug` of SRSpec's fields, in their order)."""
    parts = cfg.folder_parts()
    if cfg.sr_stage is not None:
        spec, default = cfg.sr, SRSpec()
        parts.append(f"sr{cfg.sr_stage}p{spec.memory_blocks}h{spec.hidden}")
        for field in dataclasses.fields(SRSpec):
            short, value = field.metadata.get("slug"), getattr(spec, field.name)
            if short and value != getattr(default, field.name):
                parts.append(f"{short}{value}" if not isinstance(value, bool) else short)
    return "-".join(str(p).replace("/", "_").replace(":", "_").replace(" ", "") for p in parts)


def run_dir(out: Path, group: str, cfg: TrainConfig, name: str | None = None) -> Path:
    return Path(out) / group / (name or config_slug(cfg)) / f"seed{cfg.seed}"


def read_config(folder: Path) -> TrainConfig:
    """The config a run folder was started with (also one written before configs were split by task)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise ValueError(
            f"{path} is not valid YAML ({reason}): restore it or delete that run folder"
        ) from None
    from .keys import config_from_mapping  # (the key checks, which read the model registry's facts)

    return config_from_mapping(data, str(path))


def _same_run(folder: Path, cfg: TrainConfig) -> TrainConfig | None:
    """The config of the run in `folder` (None if there is none), which must be `cfg`'s experiment."""
    if not (folder / CONFIG_FILE).exists():
        return None
    old = read_config(folder)
    before, now = old.identity(), cfg.identity()
    changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k]]
    if changed:
        raise ValueError(
            f"{folder} holds a run of another configuration ({'; '.join(changed)}): "
            "choose another --out, or delete that folder"
        )
    return old


def finished(folder: Path, cfg: TrainConfig) -> bool:
    """Whether `folder` holds `cfg`'s run finished; a folder holding another configuration is an error."""
    return _same_run(Path(folder), cfg) is not None and has_result(folder)


def claim_run_dir(folder: Path, cfg: TrainConfig, write: bool = True) -> TrainConfig:
    """Writes config.yaml in a new run folder; an existing folder must hold the same configuration
    (how it runs, e.g. its precision or where its data lies, may change: config.yaml records it).
    Returns the config the run goes on with: without a data folder of its own, the one the run
    remembers. With `write=False` (the other processes of a distributed run) it only checks."""
    old = _same_run(folder, cfg)
    if old is not None and cfg.data_dir is None:
        cfg = dataclasses.replace(cfg, data_dir=old.data_dir)
    if write:  # what a killed write left behind, a stop of before: nobody else writes here (the lock)
        for leftover in folder.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        (folder / DIVERGED_FILE).unlink(missing_ok=True)
    if write and old != cfg:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / CONFIG_FILE, yaml.safe_dump(cfg.keys(), sort_keys=False))
    return cfg


class RunDiverged(ValueError):
    """A run stopped because its loss diverged (its folder says why, in DIVERGED_FILE)."""


def divergence_advice(cfg: TrainConfig, folder: Path) -> str:
    """What to do after a divergence: which keys to change (lr, and the SR block's settings that
    can blow up where the run changed them), and where, since the same settings' folder is taken."""
    smaller = cfg.lr / 10 if cfg.lr <= 1 else 0.1
    keys = [f"a smaller lr (now {cfg.lr:g}, e.g. --set lr={smaller:g})"]
    diversity = cfg.sr.diversity if cfg.sr_stage is not None else 0.0
    if diversity > 0:  # its loss term is added to the cross-entropy: a large weight swamps it first
        less = 0.1 if diversity > 0.1 else diversity / 10  # (docs/memory.md measures 0.1)
        keys.insert(0, f"a smaller sr_diversity (now {diversity:g}, e.g. --set sr_diversity={less:g})")
    if cfg.sr_stage is not None and cfg.sr.temperature != 1.0:
        keys.append(f"sr_temperature nearer 1, the paper's (now {cfg.sr.temperature:g})")
    if cfg.sr_stage is not None and cfg.sr.memory_init != "zeros":
        keys.append(f"a smaller sr_memory_init_scale (now {cfg.sr.memory_init_scale:g})")
    return f"train again with {' or '.join(keys)}, after deleting {folder} (or in another --out)"


def mark_diverged(folder: Path, message: str) -> None:
    """Records in the run folder why the run stopped: `srblock table` and `--resume` leave it out."""
    write_text_atomic(Path(folder) / DIVERGED_FILE, message + "\n")


def diverged(folder: Path) -> str | None:
    """Why a run folder's run was stopped as diverged, or None."""
    path = Path(folder) / DIVERGED_FILE
    return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else None


class MetricsLog:
    """metrics.csv, one row per epoch (or evaluation); a resumed run first drops the rows after its
    checkpoint, those whose first column (epoch, iteration) is not below `start`."""

    def __init__(self, path: Path, start: int, columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
        self.path, self.columns = path, columns
        rows = (
            [r for r in _metrics_rows(path, columns) if float(r[columns[0]]) < start] if path.exists() else []
        )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, text.getvalue())  # a kill while rewriting leaves the old file

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n").writerow(row)


def _metrics_rows(path: Path, columns: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """metrics.csv's rows as written, each value a number or empty, or a one-line error naming the file."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
        for value in (v for row in rows for v in row.values()):
            if value not in ("", None):
                float(value)  # a ValueError (or TypeError, for a row too long) names the file below
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as err:
        reason = str(err).splitlines()[0][:100]
        raise ValueError(
            f"{path} is not a metrics table ({reason}): delete it; --resume writes it anew"
        ) from None
    # a run resumed by a newer version may log more columns than it started with: its old rows stay
    if columns is not None and (not set(fields) <= set(columns) or fields[:1] != list(columns[:1])):
        raise ValueError(
            f"{path} has columns {', '.join(fields) or 'none'}, not {', '.join(columns)}: delete it"
        )
    return rows


def read_metrics(folder: Path) -> list[dict[str, float | None]]:
    """metrics.csv's rows as numbers (None where empty)."""
    rows = _metrics_rows(Path(folder) / METRICS_FILE)
    return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in rows]


def write_result(folder: Path, result: dict[str, Any]) -> None:
    write_text_atomic(folder / RESULT_FILE, json.dumps(result, indent=2))


def read_result(folder: Path) -> dict[str, Any]:
    """A finished run's result.json, or a one-line error naming the file."""
    path = Path(folder) / RESULT_FILE
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path} is not valid JSON: delete it and resume that run") from None
    if not isinstance(result, dict):
        raise ValueError(f"{path} is not a run's result (a JSON object): delete it and resume that run")
    return result


def has_result(folder: Path) -> bool:
    return (Path(folder) / RESULT_FILE).is_file()


def unfinished_runs(root: Path) -> list[Path]:
    """Run folders under `root` that were started (config.yaml) and have no result.json yet."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG_FILE) if not has_result(p.parent))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) while runs trained in `folders` (one, or the seeds of a stack): their
    checkpoints are as they were."""

    def __init__(self, *folders: Path) -> None:
        super().__init__(", ".join(map(str, folders)))
        self.folders = [Path(f) for f in folders]

    def where(self) -> str:
        """Where each run stands: the progress its last.ckpt records (read without its tensors)."""
        return " and ".join(map(_progress, self.folders))


def _progress(folder: Path) -> str:
    try:
        state = torch.load(folder / LAST_CKPT, map_location="cpu", weights_only=True, mmap=True)
        done = next(f"{unit} {state[unit]}" for unit in ("epoch", "iteration") if unit in state)
    except (OSError, RuntimeError, ValueError, StopIteration, pickle.UnpicklingError):
        return f"{folder}, before its first checkpoint"
    return f"{folder}, whose last.ckpt is after {done}"
