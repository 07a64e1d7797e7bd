"""Many workers on one sweep: processes started with the same command on the same --out share
its runs (each trains a run no live worker holds, the first seed of every row first), a dead
worker's run is resumed by the next one, another host's claim is a lease; --rows splits a sweep."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srblock.checkpoint import load_checkpoint
from srblock.cli import main
from srblock.sweeps import expand_sweep, select_rows

from .helpers import KILLER, TINY, cli_env, main_one_thread, srblock_command, trained_in

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")

SWEEP = """recipe: cifar10
seeds: [0, 1]
set: {model: resnet10s_cifar, epochs: 2, batch_size: 32, eval_batch_size: 64}
runs:
  - {name: plain}
  - {name: SR, sr_stage: 3, sr_memory_blocks: 2}
"""
FOLDERS = ["resnet10s_cifar", "resnet10s_cifar-sr3p2h8"]


def epochs_logged(folder: Path) -> list[str]:
    with (folder / "metrics.csv").open() as f:
        return [row["epoch"] for row in csv.DictReader(f)]


@pytest.mark.slow
def test_three_workers_train_every_run_of_a_sweep_once(cifar, tmp_path):
    sweep = tmp_path / "mini.yaml"
    sweep.write_text(SWEEP)
    command = srblock_command(
        "sweep {sweep} --data {data} --out {out}", sweep=sweep, data=cifar, out=tmp_path
    )
    workers = [
        subprocess.Popen(
            [*command, "--quiet"], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err for _, err in outputs]
    trained = [int(out.split(" trained now")[0].rsplit(" ", 1)[1]) for out, _ in outputs]
    assert sum(trained) == 4  # every (row, seed) trained by exactly one worker
    for name in FOLDERS:
        for seed in range(2):
            folder = tmp_path / "mini" / name / f"seed{seed}"
            assert (folder / "result.json").is_file() and not (folder / ".lock").exists()
            assert epochs_logged(folder) == ["1", "2"]  # no epoch trained twice
    assert main(["table", str(tmp_path / "mini")]) == 0


@pytest.mark.slow
def test_a_killed_workers_run_is_finished_by_the_next_worker_as_if_never_killed(cifar, tmp_path):
    sweep = tmp_path / "mini.yaml"
    sweep.write_text(SWEEP.replace("seeds: [0, 1]", "seeds: [0]"))
    common = ["sweep", str(sweep), "--data", str(cifar), "--quiet"]
    assert main_one_thread(*common, "--out", str(tmp_path / "straight")) == 0
    marker = tmp_path / "killed_at"
    killed = subprocess.run(  # the first run (plain, seed 0): 9 steps an epoch, killed 4 into the second
        [sys.executable, "-c", KILLER, *common, "--out", str(tmp_path / "shared")],
        env=cli_env(KILL_AT="13", MARKER=str(marker)),
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL and marker.read_text() == "13"
    run = tmp_path / "shared" / "mini" / FOLDERS[0] / "seed0"
    assert (run / ".lock").is_file()  # the dead worker's claim: taken over by the next worker
    assert main_one_thread(*common, "--out", str(tmp_path / "shared")) == 0
    for name in FOLDERS:
        a = load_checkpoint(tmp_path / "shared" / "mini" / name / "seed0" / "last.ckpt")
        b = load_checkpoint(tmp_path / "straight" / "mini" / name / "seed0" / "last.ckpt")
        assert a["epoch"] == b["epoch"] == 2
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.slow
def test_another_hosts_claim_is_left_while_renewed_and_taken_over_once_it_runs_out(cifar, tmp_path, capsys):
    line = ["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path), "--set", "epochs=1", *TINY]
    folder = trained_in(tmp_path, "cifar10", line)
    folder.mkdir(parents=True)
    (folder / ".lock").write_text("4242 another-host")  # a worker on another machine, renewing its claim
    assert main_one_thread(*line) == 0
    out = capsys.readouterr().out
    assert (
        "1 runs are trained by other workers, left to them" in out and "process 4242 on another-host" in out
    )
    assert not (folder / "result.json").exists()
    stale = time.time() - 601  # its host gone: the claim not renewed for longer than the lease
    os.utime(folder / ".lock", (stale, stale))
    assert main_one_thread(*line, "--resume") == 0
    assert (folder / "result.json").is_file() and not (folder / ".lock").exists()


def test_rows_are_chosen_by_index_and_by_key(tmp_path):
    sweep = tmp_path / "mini.yaml"
    sweep.write_text(SWEEP)
    rows = expand_sweep(str(sweep))
    assert [r.name for r in select_rows(rows, ["1"], "mini")] == ["SR"]
    assert [r.name for r in select_rows(rows, ["name=plain"], "mini")] == ["plain"]
    assert [r.name for r in select_rows(rows, ["sr_stage=3"], "mini")] == ["SR"]
    assert [r.name for r in select_rows(rows, ["0", "1", "model=resnet10s_cifar"], "mini")] == ["plain", "SR"]
    assert [r.name for r in select_rows(rows, ["name=plain", "name=SR"], "mini")] == ["plain", "SR"]
    with pytest.raises(ValueError, match="--rows 2: give row indices 0..1 of mini or key=value tests"):
        select_rows(rows, ["2"], "mini")
    with pytest.raises(ValueError, match="no row of mini is chosen; its rows: 0 plain, 1 SR"):
        select_rows(rows, ["sr_stage=4"], "mini")
    with pytest.raises(ValueError, match="unknown key 'sr_stag'"):
        select_rows(rows, ["sr_stag=3"], "mini")
    with pytest.raises(ValueError, match="no row of mini is chosen"):  # not YAML: read as text, as --set
        select_rows(rows, ["model=[x"], "mini")
    with pytest.raises(ValueError, match="--rows '=3': write key=value"):
        select_rows(rows, ["=3"], "mini")


def test_workers_take_the_first_seed_of_every_row_before_the_second_of_any(tmp_path):
    from srblock.keys import make_config
    from srblock.train.jobs import Job, breadth_first

    jobs = [
        (i, Job(make_config("cifar10", {"seed": s}), tmp_path / row / f"seed{s}"))
        for i, (row, s) in enumerate((row, s) for row in ("a", "b") for s in (0, 1, 2))
    ]
    order = [f"{job.folder.parent.name}{job.cfg.seed}" for _, job in breadth_first(jobs)]
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]
