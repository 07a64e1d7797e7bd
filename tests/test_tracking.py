"""Where a run's numbers go besides metrics.csv: MLflow (a real local SQLite store, read back),
Weights & Biases (offline), TensorBoard, or none; a resumed run goes on in its tracker run, and a
tracker that is not installed is one line before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from srblock.cli import main
from srblock.train import classify

from .helpers import write_fashion_mnist

pytestmark = pytest.mark.slow

FOLDER = ("fashion_mnist", "resnet10s_cifar-sr3p2h8-batch_size16-epochs2-milestones1", "seed0")  # tiny()'s


def tiny(data, out, *flags: str) -> list[str]:
    """A two-epoch SR run of 8 steps an epoch, the loss and lr logged every 2 steps."""
    line = "train fashion_mnist --set sr_stage=3 --set sr_memory_blocks=2 --set epochs=2 --set batch_size=16"
    line += " --set log_every=2 --set milestones=[1] --quiet"
    return [*line.split(), "--data", str(data), "--out", str(out), *flags]


def test_an_mlflow_run_holds_the_config_tags_metrics_and_files_and_a_resume_goes_on_in_it(
    tmp_path, monkeypatch, capsys
):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is an extra: pip install 'srblock[mlflow]'")
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder (MLflow's default ./mlruns)
    data = write_fashion_mnist(tmp_path / "data", train=150, test=40)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    stop = {"after": 1}

    def stop_after_the_first_epoch(*args, **kwargs):  # as Ctrl-C after epoch 1's checkpoint
        stop["after"] -= 1
        if stop["after"] < 0:
            raise KeyboardInterrupt
        return classify_summary(*args, **kwargs)

    classify_summary = classify.epoch_summary
    monkeypatch.setattr(classify, "epoch_summary", stop_after_the_first_epoch)
    stop["after"] = 0
    assert main(tiny(data, tmp_path / "runs", "--logger", "mlflow")) == 130
    monkeypatch.setattr(classify, "epoch_summary", classify_summary)
    assert main([*tiny(data, tmp_path / "runs", "--logger", "mlflow"), "--resume"]) == 0
    folder = tmp_path.joinpath("runs", *FOLDER)
    result = json.loads((folder / "result.json").read_text())

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("fashion_mnist")  # an experiment per recipe or sweep
    [run] = client.search_runs([experiment.experiment_id])  # one run per seed, resumed in place
    assert run.info.run_name == f"{FOLDER[1]}/seed0" and run.info.status == "FINISHED"
    assert json.loads((folder / "tracking.json").read_text()) == {"mlflow": run.info.run_id}
    params = run.data.params
    assert (
        params["sr_stage"] == "3"
        and params["epochs"] == "2"
        and params["lr"] == "0.1"
        and "data_dir" not in params
    )
    tags = run.data.tags
    assert (tags["recipe"], tags["configuration"], tags["seed"]) == ("fashion_mnist", FOLDER[1], "0")
    assert {"version.srblock", "version.torch", "version.timm"} <= set(tags)
    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here)
    assert tags.get("git_commit") == (head.stdout.strip() or None)  # the editable checkout's commit
    history = {
        m: client.get_metric_history(run.info.run_id, m) for m in ("val_acc", "step/train_loss", "step/lr")
    }
    assert [m.step for m in history["val_acc"]] == [1, 2]  # per epoch, each once across the resume
    steps = [m.step for m in history["step/train_loss"]]  # every 2 optimiser steps, none twice
    assert steps == list(range(2, steps[-1] + 1, 2)) and steps[-1] >= 16
    lrs = [m.value for m in history["step/lr"]]  # the step schedule: x gamma at the milestone (epoch 1)
    assert lrs[0] == pytest.approx(result["config"]["lr"]) and lrs[-1] == pytest.approx(
        lrs[0] * result["config"]["gamma"]
    )
    assert run.data.metrics["result/test_acc"] == pytest.approx(result["test_acc"])
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["config.yaml", "result.json"]
    assert (tmp_path / "runs" / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_wandb_offline_and_no_tracker_at_all(tmp_path, monkeypatch):
    data = write_fashion_mnist(tmp_path / "data", train=150, test=40)
    assert main(tiny(data, tmp_path / "plain", "--logger", "csv")) == 0  # metrics.csv alone
    folder = tmp_path.joinpath("plain", *FOLDER)
    assert (folder / "metrics.csv").is_file() and not (folder / "tensorboard").exists()
    wandb = pytest.importorskip("wandb", reason="wandb is an extra: pip install 'srblock[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main(tiny(data, tmp_path / "wb", "--logger", "wandb")) == 0
    # W&B's service process writes the run's record on its own time (at the latest when the process
    # ends, as a CLI run's does); teardown is W&B's way to wait for it
    wandb.teardown()
    folder = tmp_path.joinpath("wb", *FOLDER)
    [record] = (folder / "wandb").glob("offline-run-*/run-*.wandb")
    assert json.loads((folder / "tracking.json").read_text())["wandb"] in record.name
    logged = record.read_bytes()
    assert b"step/train_loss" in logged and b"result/test_acc" in logged and b"sr_stage" in logged


def test_a_tracker_that_is_not_installed_is_one_line_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    data = write_fashion_mnist(tmp_path / "data", train=150, test=40)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main(tiny(data, tmp_path / "runs", "--logger", "mlflow")) == 2
    err = capsys.readouterr().err.strip()
    assert (
        'the mlflow logger needs the mlflow package: pip install "srblock[mlflow]"' in err and "\n" not in err
    )
    assert not (tmp_path / "runs").exists()


def test_tensorboard_keeps_every_finished_epoch_once_across_a_resume(tmp_path):
    """Rows are logged at the epoch they end, from 1: a run resumed after 2 epochs forgets what
    came after epoch 2 (a kill repeats it) and keeps epoch 2 (it purged it before, at step 2)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from srblock.keys import make_config
    from srblock.train.tracking import make_loggers

    folder = tmp_path / "recipe" / "configuration" / "seed0"
    folder.mkdir(parents=True)
    cfg = make_config("fashion_mnist", {"loggers": ["tensorboard"]})
    for step, epochs in ((0, (1, 2, 3)), (2, (3, 4))):  # killed during epoch 3, resumed after 2 epochs
        [logger] = make_loggers(cfg, folder, None, step=step)
        for epoch in epochs:
            logger.log_metrics({"val_acc": float(epoch)}, step=epoch)
        logger.finalize("success")
    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("val_acc")] == [1, 2, 3, 4]
