"""A run's folder and every file in it (`RunFolder`), read without Lightning or model code (until
a config or weights are read). Layout: OUT/<recipe or sweep>/<configuration>/seed<k>/, so the
seeds of one configuration are siblings and `srblock table` averages them. It holds config.yaml
(the run's keys, and where its data lay), data.json (the data's fingerprint: splits.py),
metrics.csv, tensorboard/, last.ckpt, best.ckpt (the tested checkpoint), result.json (or, where
training diverged, diverged.txt) and, for segmentation, class_iou.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .atomic_files import TMP_SUFFIX, write_text_atomic
from .metrics_log import METRIC_COLUMNS, MetricsLog, metrics_rows  # (MetricsLog: the file's writer)
from .run_lock import RunLock

if TYPE_CHECKING:
    from torch import nn

    from .config import TrainConfig
    from .splits import Splits

CONFIG_FILE, METRICS_FILE, RESULT_FILE = "config.yaml", "metrics.csv", "result.json"
LAST_CKPT, BEST_CKPT, CLASS_IOU_FILE = "last.ckpt", "best.ckpt", "class_iou.md"
DATA_FILE = "data.json"  # the fingerprint of the data the run trained on
DIVERGED_FILE = "diverged.txt"  # why a run was stopped: it never counts as finished


class RunDiverged(ValueError):
    """A run stopped because its loss diverged (its folder says why, in DIVERGED_FILE)."""


@dataclass(frozen=True)
class RunFolder(os.PathLike):
    """One run's folder: each of its files is read and written here, and only here. It stands
    where a path does (`os.fspath`, `folder / name`)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # (a str or any path-like taken)

    @classmethod
    def of(
        cls, out: str | Path, group: str, cfg: TrainConfig, changes: dict[str, Any] | None = None
    ) -> RunFolder:
        """The folder of `cfg`'s run under `out`: OUT/<group>/<configuration>/seed<k>, the
        configuration named after the keys a --set changed (`changes`; cfg.folder_name). Where a
        release before that rule trained this very configuration under the name without them, that
        folder is the run's."""
        seed = f"seed{cfg.seed}"
        run = cls(Path(out) / group / cfg.folder_name(changes) / seed)
        before = cls(Path(out) / group / cfg.folder_name() / seed)
        if changes and not run.started() and before.started():
            try:
                return before if before.config().identity() == cfg.identity() else run
            except ValueError:  # a broken config.yaml: not this run's
                return run
        return run

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # -- config and identity
    def started(self) -> bool:
        """Whether a run was started here (its config.yaml written)."""
        return (self.path / CONFIG_FILE).is_file()

    def config(self) -> TrainConfig:
        """The config the run was started with (also one written before configs were split by task)."""
        path = self.path / CONFIG_FILE
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            reason = str(err).strip().splitlines()[0]
            raise ValueError(
                f"{path} is not valid YAML ({reason}): restore it or delete that run folder"
            ) from None
        from .keys import config_from_mapping  # (the key checks, which read the model registry's facts)

        return config_from_mapping(data, str(path))

    def _recorded(self, cfg: TrainConfig) -> TrainConfig | None:
        """The config of the run here (None if there is none), which must be `cfg`'s experiment."""
        if not self.started():
            return None
        old = self.config()
        before, now = old.identity(), cfg.identity()
        changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k]]
        if changed:
            raise ValueError(
                f"{self.path} holds a run of another configuration ({'; '.join(changed)}): "
                "choose another --out, or delete that folder"
            )
        return old

    def check(self, cfg: TrainConfig) -> TrainConfig:
        """The config `cfg`'s run goes on with here: `cfg`, with the data folder the run remembers
        where `cfg` names none. A folder holding another configuration is a one-line error (how a
        run runs, e.g. its precision or where its data lie, may differ). Writes nothing."""
        old = self._recorded(cfg)
        return dataclasses.replace(cfg, data_dir=old.data_dir) if old and cfg.data_dir is None else cfg

    def claim(self, cfg: TrainConfig) -> None:
        """Starts or continues `cfg`'s run here (`cfg` as `check` returned it; this process holds the
        lock): what a killed write left behind and a divergence mark of before go, and config.yaml
        records `cfg` where it changed."""
        for leftover in self.path.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        (self.path / DIVERGED_FILE).unlink(missing_ok=True)
        if self._recorded(cfg) != cfg:
            self.path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path / CONFIG_FILE, yaml.safe_dump(cfg.keys(), sort_keys=False))

    def finished(self, cfg: TrainConfig) -> bool:
        """Whether `cfg`'s run is finished here; a folder holding another configuration is an error."""
        return self._recorded(cfg) is not None and self.has_result()

    def lock(self) -> RunLock:
        """The claim that one process at a time trains here (run_lock.py): a context manager."""
        return RunLock(self.path)

    # -- result and divergence
    def has_result(self) -> bool:
        return (self.path / RESULT_FILE).is_file()

    def result(self) -> dict[str, Any]:
        """The finished run's result.json, or a one-line error naming the file."""
        path = self.path / RESULT_FILE
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path} is not valid JSON: delete it and resume that run") from None
        if not isinstance(result, dict):
            raise ValueError(f"{path} is not a run's result (a JSON object): delete it and resume that run")
        if isinstance(result.get("best_epoch"), int) and result.get("epoch_base") != 1:  # from 0 before
            result.update(best_epoch=result["best_epoch"] + 1, epoch_base=1)
        return result

    def write_result(self, result: dict[str, Any]) -> None:
        write_text_atomic(self.path / RESULT_FILE, json.dumps(result, indent=2))

    def diverged(self) -> str | None:
        """Why the run was stopped as diverged, or None."""
        path = self.path / DIVERGED_FILE
        return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else None

    def mark_diverged(self, message: str) -> None:
        """Records why the run stopped: `srblock table` and `--resume` leave it out."""
        write_text_atomic(self.path / DIVERGED_FILE, message + "\n")

    # -- metrics
    def metrics_log(self, start: int, columns: tuple[str, ...] = METRIC_COLUMNS) -> MetricsLog:
        """metrics.csv to append to, its rows from `start` on (those a resume trains again) dropped."""
        return MetricsLog(self.path / METRICS_FILE, start, columns)

    def metrics(self) -> list[dict[str, float | None]]:
        """metrics.csv's rows as numbers (None where empty)."""
        rows = metrics_rows(self.path / METRICS_FILE)
        return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in rows]

    # -- data and weights
    def check_data(self, splits: Splits, root: str | Path | None, write: bool = True) -> None:
        """Records the data the run trains on (data.json: their splits.fingerprint, read from `root`)
        when it starts; a run that goes on (a resume, an analysis) must find the same data, else one
        line naming what changed."""
        from .splits import fingerprint, fingerprint_changes

        now, path = fingerprint(splits, root), self.path / DATA_FILE
        if not path.exists():  # a new run (or one from before data.json): it records its data now
            if write:
                write_text_atomic(path, json.dumps(now, indent=1))
            return
        before = json.loads(path.read_text())
        for key, value in now.items():  # what a data.json of an earlier release did not record: not compared
            if isinstance(value, dict) and isinstance(before.get(key), dict):
                now[key] = {k: v for k, v in value.items() if k in before[key]}
        changed = fingerprint_changes(before, now)
        if not changed:
            return
        from .data.folder import SPLIT_FOLDERS

        renamed = [n for n in SPLIT_FOLDERS["val"][1:] if root and (Path(root) / n).is_dir()]
        if renamed and before.get("val", {}).get("files") != now["val"].get("files"):
            raise ValueError(  # a run from before validation/ was read as the validation split
                f"the data read otherwise than when {self.path} trained ({'; '.join(changed)}): "
                f"{renamed[0]}/ is now its validation split, where the run held val_fraction of train/ "
                f"out: train a new run with another --out, or move {renamed[0]}/ out of {root} to read "
                "the data as it did"
            )
        raise ValueError(
            f"the data are not the ones {self.path} trained on ({'; '.join(changed)}): restore them, "
            "or train a new run in another output folder (--out; srblock.fit's out=)"
        )

    def class_names(self, cfg: TrainConfig) -> tuple[str, ...]:
        """The class names the run was trained on: its config's (folders), its result.json's or, for
        a run not finished yet, its data.json's; else numbers."""
        names = cfg.class_names()
        for recorded in (RESULT_FILE, DATA_FILE):
            if not names and (self.path / recorded).is_file():
                try:
                    names = json.loads((self.path / recorded).read_text()).get("classes")
                except (ValueError, OSError, AttributeError):
                    names = None
        return tuple(names) if names else tuple(str(k) for k in range(cfg.num_classes()))

    def load_weights(
        self, model: nn.Module, cfg: TrainConfig, name: str = BEST_CKPT, advice: str | None = None
    ) -> dict[str, Any]:
        """Loads the checkpoint `name` into the run's model; returns the checkpoint. One from another
        configuration (other shapes or names) is a one-line error, not a traceback, ending in
        `advice` where the caller is not training (see load_checkpoint)."""
        path = self.path / name
        from .checkpoint import load_checkpoint  # (torch: only where weights are read)

        state = load_checkpoint(path, cfg.model, advice)
        try:
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError, TypeError):
            raise ValueError(
                f"checkpoint {path} does not fit this run's {cfg.model}: it is from another configuration"
                + (
                    f" (or config.yaml was edited since): restore it, or {advice}"
                    if advice
                    else "; choose another --out, or delete it"
                )
            ) from None
        return state

    def progress(self) -> str:
        """Where the run stands: the progress its last.ckpt records (read without its tensors)."""
        try:
            import torch

            state = torch.load(self.path / LAST_CKPT, map_location="cpu", weights_only=True, mmap=True)
            done = next(f"{unit} {state[unit]}" for unit in ("epoch", "iteration") if unit in state)
        except (OSError, RuntimeError, ValueError, StopIteration, pickle.UnpicklingError):
            return f"{self.path}, before its first checkpoint"
        return f"{self.path}, whose last.ckpt is after {done}"


def unfinished_runs(root: Path) -> list[Path]:
    """Run folders under `root` that were started (config.yaml) and have no result.json yet."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG_FILE) if not RunFolder(p.parent).has_result())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) while runs trained in `folders` (one, or the seeds of a stack): their
    checkpoints are as they were."""

    def __init__(self, *folders: str | os.PathLike[str]) -> None:
        super().__init__(", ".join(map(str, folders)))
        self.folders = [Path(f) for f in folders]

    def where(self) -> str:
        """Where each run stands: the progress its last.ckpt records."""
        return " and ".join(RunFolder(f).progress() for f in self.folders)
