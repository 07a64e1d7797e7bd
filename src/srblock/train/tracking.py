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
import uuid
from pathlib import Path
from typing import Any

from ..atomic_files import write_text_atomic
from ..config import TrainConfig
from ..provenance import git_commit, versions
from ..run_folder import CONFIG_FILE, RESULT_FILE

TRACKING_FILE = "tracking.json"  # the tracker runs a run folder goes on in: {"mlflow": run id, ...}
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}  # the package each tracker needs (its pip extra)


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


_OPEN: list[Any] = []  # the loggers of the runs in progress in this process: closed however they end


def make_loggers(cfg: TrainConfig, folder: Path, extra: dict[str, Any] | None, step: int) -> list[Any]:
    """The loggers of a run's trackers (rank 0's), at training `step` (a resumed run's: it goes on
    in the tracker runs of tracking.json). A tracker run made now gets the configuration as
    hyperparameters; TensorBoard forgets what was logged after `step` (a kill repeats it)."""
    path = folder / TRACKING_FILE
    ids: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    group, name = folder.parents[1].name, f"{folder.parent.name}/{folder.name}"
    loggers, new = [], []  # new: the tracker runs made now, which get the configuration
    for tracker in dict.fromkeys(cfg.loggers):
        made = tracker not in ids and (tracker != "tensorboard" or step == 0)
        if tracker == "tensorboard":
            from lightning.fabric.loggers import TensorBoardLogger

            # (rows are logged at the epoch or iteration they end, from 1: those after `step` go)
            logger = TensorBoardLogger(
                folder, name="tensorboard", version="", purge_step=step + 1 if step else None
            )
        elif tracker == "mlflow":
            _require("mlflow")
            from lightning.pytorch.loggers import MLFlowLogger

            out, uri = folder.parents[2].resolve(), os.environ.get("MLFLOW_TRACKING_URI")
            server = (uri or "").startswith(("http://", "https://", "databricks"))
            logger = MLFlowLogger(  # a server keeps its own artifact store; a local one: beside the runs
                experiment_name=group, run_name=name, tracking_uri=uri or f"sqlite:///{out / 'mlflow.db'}",
                tags=tags(cfg, folder, extra), run_id=ids.get("mlflow"),
                artifact_location=None if server else (out / "mlartifacts").as_uri(),
            )  # fmt: skip
            ids["mlflow"] = logger.run_id
        elif tracker == "wandb":
            _require("wandb")
            from lightning.pytorch.loggers import WandbLogger

            ids.setdefault("wandb", uuid.uuid4().hex[:12])  # its own: never another run's of one name
            logger = WandbLogger(
                project=group, name=name, id=ids["wandb"], resume="allow", save_dir=str(folder),
                reinit="create_new",  # a run of its own, whatever run this process had open
                tags=[f"{k}={v}"[:64] for k, v in tags(cfg, folder, extra).items()],
            )  # fmt: skip
        else:  # csv: metrics.csv, always written
            continue
        loggers.append(logger)
        new += [logger] if made else []
    if ids:
        write_text_atomic(path, json.dumps(ids, indent=1))
    for logger in new:
        logger.log_hyperparams(cfg.record())
    _OPEN.extend(loggers)
    return loggers


def close_open_loggers(status: str) -> None:
    """Closes the trackers' runs this process left open (a run stopped, diverged or failed), with
    `status` ("failed", "killed"), so none stays RUNNING and TensorBoard's buffer is written."""
    while _OPEN:
        _close(_OPEN.pop(), status)


def _close(logger: Any, status: str) -> None:
    kind = type(logger).__name__
    logger.finalize(status.upper() if kind == "MLFlowLogger" and status == "killed" else status)
    if kind == "WandbLogger":  # (Lightning's leaves W&B's run open until exit)
        logger.experiment.finish(exit_code=0 if status == "success" else 1)


def finish_loggers(loggers: list[Any], folder: Path, result: dict[str, Any]) -> None:
    """The test scores (numbers of result.json) to every tracker, config.yaml and result.json as
    MLflow's artifacts, and each tracker's run closed."""
    scores = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers:
        logger.log_metrics({f"result/{k}": v for k, v in scores.items()})
        if type(logger).__name__ == "MLFlowLogger":
            for name in (CONFIG_FILE, RESULT_FILE):
                logger.experiment.log_artifact(logger.run_id, str(folder / name))
        _close(logger, "success")
        if logger in _OPEN:
            _OPEN.remove(logger)
