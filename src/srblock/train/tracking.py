"""Where a run's numbers go besides metrics.csv (always written): the trackers its `loggers` key
names, through Lightning's loggers (TensorBoard, the default; MLflow; Weights & Biases).

Every tracker gets the run's whole configuration as hyperparameters (a fresh run's), tags for
its recipe or sweep, configuration, seed, the versions and the code's git commit; the per-epoch
(or per-evaluation) metrics, the training loss and lr every `log_every` steps, and at the end
the test scores. MLflow keeps an experiment per recipe or sweep and a run per seed, with
config.yaml and result.json as artifacts; its store is MLFLOW_TRACKING_URI's, else a SQLite
file beside the runs (OUT/mlflow.db). A resumed run goes on in the tracker runs it started
(their ids in the run folder's tracking.json). MLflow and W&B are optional extras.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ..checkpoint import write_text_atomic
from ..config import TrainConfig
from ..runs import CONFIG_FILE, RESULT_FILE
from .fabric import versions

TRACKING_FILE = "tracking.json"  # the tracker runs a run folder goes on in: {"mlflow": run id, ...}
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}  # the package each tracker needs (its pip extra)


def git_commit() -> str | None:
    """The commit of the srblock checkout that runs (an editable install), or None (an installed
    package: no checkout of srblock's own, even inside another repository)."""
    package = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    if done.returncode or len(lines) != 2 or Path(lines[0]) / "src" / "srblock" != package:
        return None
    return lines[1]


def tags(cfg: TrainConfig, folder: Path, extra: dict[str, Any] | None) -> dict[str, str]:
    """What a tracker files a run under: its recipe or sweep, configuration, seed, the sweep row's
    name, the versions, the code's commit."""
    found = {
        "recipe": folder.parents[1].name,
        "configuration": folder.parent.name,
        "seed": str(cfg.seed),
        **({"row": str(extra["name"])} if extra and extra.get("name") else {}),
        **{f"version.{k}": v for k, v in versions().items()},
    }
    commit = git_commit()
    return {**found, **({"git_commit": commit} if commit else {})}


def _require(name: str) -> None:
    try:
        __import__(EXTRAS[name])
    except ImportError:
        raise ValueError(
            f'the {name} logger needs the {EXTRAS[name]} package: pip install "srblock[{name}]" (or leave '
            f"{name} out of --logger / loggers)"
        ) from None


def check_trackers(cfg: TrainConfig) -> None:
    """One line before a run starts where a tracker asked for is not installed."""
    for name in cfg.loggers:
        if name in EXTRAS:
            _require(name)


def make_loggers(cfg: TrainConfig, folder: Path, extra: dict[str, Any] | None, fresh: bool) -> list[Any]:
    """The loggers of a run's trackers (rank 0's), each given the configuration where the run is
    `fresh` (a resumed one goes on in the tracker runs of tracking.json)."""
    path = folder / TRACKING_FILE
    ids: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    group, name = folder.parents[1].name, f"{folder.parent.name}/{folder.name}"
    loggers = []
    for tracker in dict.fromkeys(cfg.loggers):
        if tracker == "tensorboard":
            from lightning.fabric.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(folder, name="tensorboard", version=""))
        elif tracker == "mlflow":
            _require("mlflow")
            from lightning.pytorch.loggers import MLFlowLogger

            uri = (
                os.environ.get("MLFLOW_TRACKING_URI")
                or f"sqlite:///{folder.parents[2].resolve() / 'mlflow.db'}"
            )
            logger = MLFlowLogger(
                experiment_name=group, run_name=name, tracking_uri=uri, tags=tags(cfg, folder, extra),
                run_id=ids.get("mlflow"),
            )  # fmt: skip
            ids["mlflow"] = logger.run_id
            loggers.append(logger)
        elif tracker == "wandb":
            _require("wandb")
            from lightning.pytorch.loggers import WandbLogger

            ids.setdefault("wandb", f"{group}-{folder.parent.name}-{folder.name}".replace("/", "_")[-120:])
            loggers.append(
                WandbLogger(
                    project=group, name=name, id=ids["wandb"], resume="allow", save_dir=str(folder),
                    tags=[f"{k}={v}" for k, v in tags(cfg, folder, extra).items()][:64],
                )
            )  # fmt: skip
    if ids:
        write_text_atomic(path, json.dumps(ids, indent=1))
    if fresh:
        for logger in loggers:
            logger.log_hyperparams(cfg.record())
    return loggers


def finish_loggers(loggers: list[Any], folder: Path, result: dict[str, Any]) -> None:
    """The test scores (numbers of result.json) to every tracker, config.yaml and result.json as
    MLflow's artifacts, and each tracker's run closed."""
    scores = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers:
        logger.log_metrics({f"result/{k}": v for k, v in scores.items()})
        if type(logger).__name__ == "MLFlowLogger":
            for name in (CONFIG_FILE, RESULT_FILE):
                logger.experiment.log_artifact(logger.run_id, str(folder / name))
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":  # (Lightning's leaves W&B's run open until exit)
            logger.experiment.finish()
