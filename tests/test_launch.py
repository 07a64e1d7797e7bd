"""Workers started through submitit: a SLURM job array (checked by the sbatch text submitit
renders, with an `sbatch` that only records it: no cluster here), and local processes that train a
tiny sweep, one of them signalled as SLURM signals a job before its time-out, requeued and done."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from srblock.cli import main
from srblock.launch import without_flags

from .helpers import srblock_command

submitit = pytest.importorskip(
    "submitit", reason="submitit is the cluster extra: pip install 'srblock[cluster]'"
)

SWEEP = """recipe: cifar10
seeds: [0]
set: {model: resnet10s_cifar, epochs: 2, batch_size: 32, eval_batch_size: 64}
runs:
  - {name: plain}
  - {name: SR, sr_stage: 3, sr_memory_blocks: 2}
"""


@pytest.fixture()
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """`srun` and an `sbatch` that copies the file it is given and says which job it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path / "submitted.sh"}\necho "Submitted batch job 4242"\n'
    )
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "submitted.sh"


def test_a_slurm_array_of_workers_is_rendered_from_the_flags(fake_slurm, tmp_path, capsys):
    sweep = tmp_path / "mini.yaml"
    sweep.write_text(SWEEP)
    words = [
        "sweep", str(sweep), "--out", str(tmp_path / "runs"), "--set", "lr=0.05", "--launcher", "slurm",
        "--workers", "3", "--slurm-partition", "gpu", "--slurm-gpus-per-node", "1", "--slurm-time", "240",
        "--slurm-cpus-per-task", "8", "--slurm-setup", "module load cuda", "--slurm-setup",
        "source ~/venv/bin/activate", "--slurm-array-parallelism", "2", "--slurm-param", "exclude=node7",
    ]  # fmt: skip
    assert main(words) == 0
    out = capsys.readouterr().out
    logs = tmp_path / "runs" / "workers" / "mini"
    assert f"submitted 3 workers (slurm): jobs 4242_0, 4242_1, 4242_2; logs in {logs}" in out
    sbatch = fake_slurm.read_text()
    for line in (
        "#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=240",
        "#SBATCH --cpus-per-task=8", "#SBATCH --ntasks-per-node=1", "#SBATCH --exclude=node7",
        "#SBATCH --signal=USR2@90", "module load cuda", "source ~/venv/bin/activate",
    ):  # fmt: skip
        assert line in sbatch, line
    assert "-m submitit.core._submit" in sbatch
    # what each worker runs: the same command, without the launcher's flags
    [pickled] = list(logs.rglob("*.pkl"))[:1]
    delayed = submitit.helpers.DelayedSubmission.load(pickled)
    assert delayed.args == (["sweep", str(sweep), "--out", str(tmp_path / "runs"), "--set", "lr=0.05"],)
    assert hasattr(delayed.function, "checkpoint")  # requeued on SLURM's signal before a time-out
    assert delayed._timeout_countdown >= 1000  # as often as the sweep needs (submitit's default: 3)


def test_launcher_flags_without_a_launcher_or_beyond_one_device_are_refused(tmp_path, capsys):
    assert main(["sweep", "cifar100-table1", "--workers", "3", "--out", str(tmp_path)]) == 2
    assert "--workers does nothing without --launcher" in capsys.readouterr().err
    command = ["train", "fashion_mnist", "--launcher", "local", "--devices", "2", "--out", str(tmp_path)]
    assert main(command) == 2
    assert "a submitted worker trains on one device" in capsys.readouterr().err


def test_a_train_workers_command_names_its_seeds_and_no_worker_submits_more(
    fake_slurm, tmp_path, capsys, monkeypatch
):
    """`train RECIPE --resume` alone resumes what it finds: a worker of `train` got nothing to do; a
    shortened launcher flag stayed in the workers' words, and each would have submitted more."""
    out = str(tmp_path / "runs")
    assert main(["train", "fashion_mnist", "--out", out, "--launcher", "slurm", "--workers", "2"]) == 0
    assert f"each runs: srblock train fashion_mnist --out {out} --seeds 0 --resume" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # flags by their whole names only
        main(["sweep", "cifar100-table1", "--out", out, "--launch", "slurm"])
    assert "unrecognized arguments: --launch slurm" in capsys.readouterr().err
    monkeypatch.setenv("SRBLOCK_WORKER", "1")  # in a submitted worker
    assert main(["train", "fashion_mnist", "--out", out, "--launcher", "slurm"]) == 2
    assert "--launcher in a submitted worker" in capsys.readouterr().err


def test_a_workers_command_is_the_command_without_the_launchers_flags():
    words = [
        "sweep",
        "x",
        "--workers=2",
        "--launcher",
        "local",
        "--out",
        "o",
        "--slurm-setup",
        "a b",
        "--quiet",
    ]
    assert without_flags(words, ["--launcher", "--workers", "--slurm-setup"]) == [
        "sweep",
        "x",
        "--out",
        "o",
        "--quiet",
    ]


def _task_pids(folder: Path) -> list[int]:
    """The processes that run submitit's jobs of `folder` (their command line names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            entry.name.isdigit()
            and b"submitit.core._submit" in command
            and str(folder).encode() in b" ".join(command)
        ):
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_local_workers_train_a_sweep_and_a_signalled_one_is_requeued_and_resumes(cifar, tmp_path):
    """Two workers through submitit's local executor (real processes); one gets the signal SLURM
    sends before a time-out while it trains: submitit requeues it, it takes its run over and every
    run finishes once, each epoch trained once."""
    import subprocess

    sweep = tmp_path / "mini.yaml"
    sweep.write_text(SWEEP)
    logs = tmp_path / "runs" / "workers" / "mini"
    command = srblock_command(
        "sweep {sweep} --data {data} --out {out}", sweep=sweep, data=cifar, out=tmp_path / "runs"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launcher = subprocess.Popen([*command, "--quiet", "--launcher", "local", "--workers", "2"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 300
    while not list((tmp_path / "runs" / "mini").rglob("last.ckpt")) and time.time() < deadline:
        time.sleep(0.2)  # a worker is training (its first epoch is done)
    pids = _task_pids(logs)
    assert pids, "no worker process found"
    os.kill(pids[0], signal.SIGUSR2)  # SLURM's signal before a time-out
    out, err = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, err[-3000:]
    assert "the 2 workers have ended" in out
    logged = "".join(p.read_text() for p in logs.rglob("*_log.*"))
    assert "Requeued job" in logged or "requeue" in logged.lower()
    for folder in (tmp_path / "runs" / "mini").glob("*/seed*"):
        assert (folder / "result.json").is_file()
        epochs = [line.split(",")[0] for line in (folder / "metrics.csv").read_text().splitlines()[1:]]
        assert epochs == ["1", "2"], folder  # (numbered from 1)
    assert len(list((tmp_path / "runs" / "mini").glob("*/seed*"))) == 2
