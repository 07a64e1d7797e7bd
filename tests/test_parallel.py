"""`--parallel N`: several runs at once, each in its own process and folder, as one run alone."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srblock.checkpoint import load_checkpoint
from srblock.cli import main
from srblock.train.parallel import LOG_FILE, device_slots, threads_per_run

from .helpers import TINY, argv, trained_in

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")


def test_device_slots_and_threads():
    assert device_slots("cpu", 1, 3) == [None, None, None]
    assert threads_per_run(1) == torch.get_num_threads() and threads_per_run(10_000) == 1
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU here"):
            device_slots("cuda", 1, 2)
    with pytest.raises(ValueError, match="--accelerator mps"):
        device_slots("mps", 1, 2)


@pytest.mark.slow
def test_two_seeds_at_once_equal_each_seed_alone(cifar, tmp_path, capsys):
    line = "train cifar10 --data {data} --out {out} --set epochs=2 --seeds 0 1 --accelerator cpu --parallel 2"
    assert main(argv(line, data=cifar, out=tmp_path / "both") + TINY) == 0
    out = capsys.readouterr().out
    words = argv(line, data=cifar, out=tmp_path) + TINY
    folders = [trained_in(tmp_path / "both", "cifar10", words, s) for s in (0, 1)]
    for folder in folders:
        names = {p.name for p in folder.iterdir()}
        assert {"config.yaml", "metrics.csv", "last.ckpt", "best.ckpt", "result.json", LOG_FILE} <= names
        assert f"started {folder} on CPU" in out and f"finished {folder}: test_acc" in out
    table = [ln.split("|")[1:3] for ln in out.splitlines() if ln.startswith("| /")]  # a row per run
    assert [(run.strip(), seed.strip()) for run, seed in table] == [
        (str(f), f[-1:]) for f in map(str, folders)
    ]
    # seed 1 trained alone, with the thread count each parallel run had
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_run(2))
    try:
        line = "train cifar10 --data {data} --out {out} --set epochs=2 --seeds 1 --accelerator cpu"
        assert main(argv(line, data=cifar, out=tmp_path / "alone") + TINY) == 0
    finally:
        torch.set_num_threads(threads)
    alone = trained_in(tmp_path / "alone", "cifar10", argv(line, data=cifar, out=tmp_path) + TINY, 1)
    for name in ("last.ckpt", "best.ckpt"):
        got, expected = load_checkpoint(folders[1] / name)["model"], load_checkpoint(alone / name)["model"]
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in got)
    both = [json.loads((f / "result.json").read_text())["test_acc"] for f in (folders[1], alone)]
    assert both[0] == both[1]


@pytest.mark.slow
def test_a_failed_run_does_not_stop_the_others(cifar, tmp_path, capsys):
    """A run that cannot start (here: an unfinished run without --resume) fails in its log; the rest train."""
    stale = trained_in(tmp_path, "cifar10", ["--set", "epochs=1", *TINY], 1)
    stale.mkdir(parents=True)
    (stale / "last.ckpt").write_bytes(b"unfinished")
    line = "train cifar10 --data {data} --out {out} --set epochs=1 --seeds 0 1 --accelerator cpu --parallel 2"
    assert main(argv(line, data=cifar, out=tmp_path) + TINY) == 2
    captured = capsys.readouterr()
    assert f"failed {stale} (exit 2): srblock train: error: {stale} holds an unfinished run" in captured.out
    assert captured.err.strip().startswith("srblock train: error: 1 of 2 runs failed")
    assert (stale.parent / "seed0" / "result.json").exists()


@pytest.mark.slow
def test_sweep_in_parallel_records_each_row(cifar, tmp_path, capsys):
    sweep = tmp_path / "two.yaml"
    sweep.write_text(
        "recipe: cifar10\nset: {epochs: 1, model: resnet10s_cifar, batch_size: 32}\nseeds: [0]\n"
        "runs:\n  - {name: plain}\n  - {name: sr, sr_stage: 3, sr_memory_blocks: 2}\n"
    )
    line = "sweep {sweep} --data {data} --out {out} --accelerator cpu --parallel 2 --quiet"
    assert main(argv(line, sweep=sweep, data=cifar, out=tmp_path / "runs")) == 0
    results = sorted((tmp_path / "runs").rglob("result.json"))
    assert [json.loads(p.read_text())["name"] for p in results] == ["plain", "sr"]
    assert "2 runs: 0 were finished already, 2 trained now" in capsys.readouterr().out
    assert main(argv(line, sweep=sweep, data=cifar, out=tmp_path / "runs")) == 0
    assert "2 runs: 2 were finished already, 0 trained now" in capsys.readouterr().out


def test_parallel_with_several_nodes_is_refused(cifar, tmp_path, capsys):
    line = "train cifar10 --data {data} --out {out} --parallel 2 --num-nodes 2"
    assert main(argv(line, data=cifar, out=tmp_path)) == 2
    assert "leave out --num-nodes" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_stops_every_run_and_the_same_command_with_resume_finishes_them(cifar, tmp_path):
    line = "train cifar10 --data {data} --out {out} --set epochs=4 --seeds 0 1 --accelerator cpu --parallel 2"
    command = argv(line, data=cifar, out=tmp_path) + TINY
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    run = subprocess.Popen(
        [sys.executable, "-m", "srblock", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    folders = [trained_in(tmp_path, "cifar10", command, s) for s in (0, 1)]
    deadline = time.time() + 240
    while (
        not all((f / "last.ckpt").exists() for f in folders) and run.poll() is None and time.time() < deadline
    ):
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    lines = err.strip().splitlines()
    assert sorted(ln.split(":")[0] for ln in lines[:2]) == [f"stopped {f}" for f in folders]
    assert lines[-1].endswith(f"continue with: {shlex.join(['srblock', *command, '--resume'])}")
    assert not any((f / "result.json").exists() or (f / ".lock").exists() for f in folders)
    assert main([*command, "--resume"]) == 0
    assert all(json.loads((f / "result.json").read_text())["config"]["epochs"] == 4 for f in folders)


def test_a_run_stops_as_at_ctrl_c_when_the_pipe_to_its_parent_ends():
    child = subprocess.Popen(
        [sys.executable, "-c", WATCHED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        text=True,
    )
    assert child.stdout.readline().strip() == "watching"
    child.stdin.close()  # what the parent's death does to the pipe
    assert child.stdout.read().strip() == "interrupted" and child.wait(timeout=30) == 0


WATCHED = """
import sys, time
from srblock.train.parallel import stop_with_parent
stop_with_parent(sys.stdin.fileno())
try:  # (the interrupt may come as soon as the line is out)
    print("watching", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.slow
def test_runs_of_a_killed_command_stop_and_release_their_locks(cifar, tmp_path):
    line = "train cifar10 --data {data} --out {out} --set epochs=6 --accelerator cpu --parallel 1"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "srblock", *argv(line, data=cifar, out=tmp_path), *TINY],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # as a script's background job (`srblock train ... &`) starts: SIGINT ignored, which children inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    folder = trained_in(tmp_path, "cifar10", argv(line, data=cifar, out=tmp_path) + TINY)
    deadline = time.time() + 120
    while not (folder / "last.ckpt").exists() and parent.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    run_pid = int((folder / ".lock").read_text().split()[0])
    parent.kill()  # SIGKILL: the command gets no chance to stop its runs
    parent.wait()
    while running(run_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not running(run_pid)  # gone, not training on unseen
    assert not (folder / ".lock").exists() and not (folder / "result.json").exists()
    assert f"interrupted in {folder}, whose last.ckpt is after epoch" in (folder / LOG_FILE).read_text()


def running(pid: int) -> bool:
    """Whether a process lives (an ended one nobody has reaped yet is a zombie: not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
