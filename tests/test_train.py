"""The classification loop (CIFAR layout and ImageNet folders, tiny files the tests write), the
engine both loops share (resume, progress output, devices), and the lr schedules."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from srblock.checkpoint import load_checkpoint, save_atomic
from srblock.cli import main
from srblock.data import load_dataset
from srblock.data.imagenet import imagenet_transform
from srblock.keys import make_config, parse_set
from srblock.run_model import build_model, trained_model
from srblock.train.schedule import multistep_factor, poly_factor

from .helpers import (
    KILLER,
    TINY,
    argv,
    cli_env,
    main_one_thread,
    paused_run,
    srblock_cli,
    trained_in,
    write_cifar100,
    write_image_folder,
    write_imagenet,
)

# the CIFAR files written here are not the official ones: the checksum warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")
# the SR runs of these tests: epochs and TINY's batch sizes changed from the recipe name their folder
SR_WORDS = ["--set", "epochs=2", "--set", "sr_stage=3", *TINY]


def test_schedules_are_the_papers():
    factors = [multistep_factor(e, [60, 120, 160], 0.2) for e in (0, 59, 60, 119, 120, 160, 199)]
    assert factors == pytest.approx([1, 1, 0.2, 0.2, 0.04, 0.008, 0.008])
    factors = [poly_factor(i, 80_000, 0.9, 1e-4 / 0.01) for i in (0, 40_000, 80_000)]
    assert factors[0] == 1.0 and factors[2] == pytest.approx(0.01)
    assert factors[1] == pytest.approx(0.99 * 0.5**0.9 + 0.01)


@pytest.mark.slow
def test_train_writes_a_complete_run_folder_per_seed(cifar, tmp_path, capsys):
    args = (
        argv(
            "train cifar10 --data {data} --out {out} --set epochs=2 --set sr_stage=3 --seeds 0 1",
            data=cifar,
            out=tmp_path,
        )
        + TINY
    )
    assert main(args) == 0
    seeds = sorted(trained_in(tmp_path, "cifar10", args).parent.iterdir())
    assert [p.name for p in seeds] == ["seed0", "seed1"]
    for folder in seeds:
        names = {p.name for p in folder.iterdir()}
        assert {"config.yaml", "metrics.csv", "tensorboard", "last.ckpt", "best.ckpt", "result.json"} <= names
        assert any(p.name.startswith("events.out.tfevents") for p in (folder / "tensorboard").rglob("*"))
        lines = (folder / "metrics.csv").read_text().splitlines()
        memory = "sr_mem_ratio,sr_weight_entropy,sr_weight_class_sep,val_acc_bypassed"  # an SR run's
        assert (
            lines[0] == f"epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,{memory}" and len(lines) == 3
        )
        result = json.loads((folder / "result.json").read_text())
        assert 0 <= result["test_acc"] <= 100 and result["epochs"] == 2
        assert result["sr_params"] > 0
        assert result["oh_pct"] == pytest.approx(100 * result["sr_params"] / result["base_params"])
        assert {"torch", "timm", "lightning", "srblock"} <= set(result["versions"])
        assert result["wall_time_s"] > 0
        assert "data_dir" not in result["config"] and "crop_size" not in result["config"]
        best = load_checkpoint(folder / "best.ckpt", "resnet10s_cifar")
        assert best["epoch"] == result["best_epoch"]  # (best.ckpt counts the epochs done: the same number)
        assert yaml.safe_load((folder / "config.yaml").read_text())["data_dir"] == str(cifar.resolve())
    r0, r1 = (json.loads((f / "result.json").read_text()) for f in seeds)
    assert r0["seed"] == 0 and r1["seed"] == 1
    out = capsys.readouterr().out
    assert "seed0" in out and "test_acc" in out
    # a finished run is not trained again (another setting is another folder: test_cli's sweep test)
    assert main(args) == 0
    assert "is finished (result.json): skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_same_seed_same_result(cifar, tmp_path):
    for out in ("a", "b"):
        main(
            argv("train cifar10 --data {data} --out {out} --set epochs=1", data=cifar, out=tmp_path / out)
            + TINY
        )
    words = argv("--set epochs=1") + TINY
    a, b = (load_checkpoint(trained_in(tmp_path / o, "cifar10", words) / "last.ckpt") for o in "ab")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.slow
def test_a_run_killed_inside_an_epoch_resumes_to_the_same_weights(cifar, tmp_path, capsys):
    common = ["train", "cifar10", "--data", str(cifar), "--set", "epochs=3", "--set", "sr_stage=3", *TINY]
    assert main_one_thread(*common, "--out", str(tmp_path / "straight")) == 0
    folder, straight = (trained_in(tmp_path / out, "cifar10", common) for out in ("killed", "straight"))
    steps_per_epoch = -(-270 // 32)  # 300 images, 10% for validation, batch 32: 9 steps
    marker = tmp_path / "killed_at"
    env = cli_env(KILL_AT=str(steps_per_epoch + 4), MARKER=str(marker))
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *common, "--out", str(tmp_path / "killed")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert marker.read_text() == str(steps_per_epoch + 4)  # killed 4 steps into epoch 2
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 1 and not (folder / "result.json").exists()
    assert len((folder / "metrics.csv").read_text().splitlines()) == 2  # the header and epoch 1's row

    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "killed")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("holds an unfinished run: add --resume to continue it, or choose another --out")
    )

    # data remembered; a bare --resume applies --precision (32-true is what auto means on the CPU)
    resume = ("train", "cifar10", "--out", str(tmp_path / "killed"), "--resume", "--precision", "32-true")
    assert main_one_thread(*resume, "--quiet") == 0
    assert yaml.safe_load((folder / "config.yaml").read_text())["precision"] == "32-true"
    a = load_checkpoint(folder / "last.ckpt")
    b = load_checkpoint(straight / "last.ckpt")
    assert a["epoch"] == b["epoch"] == 3
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    result = json.loads((folder / "result.json").read_text())
    assert result["test_acc"] == json.loads((straight / "result.json").read_text())["test_acc"]
    assert len((folder / "metrics.csv").read_text().splitlines()) == 4  # one row per epoch, none twice


@pytest.mark.slow
def test_progress_is_one_line_per_epoch_when_the_output_is_a_file(cifar, tmp_path):
    done = srblock_cli(
        *argv("train cifar10 --data {data} --out {out} --set epochs=2", data=cifar, out=tmp_path),
        *[a for a in TINY if a != "--quiet"],
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    name = f"{trained_in(tmp_path, 'cifar10', argv('--set epochs=2') + TINY).parent.name}/seed0"
    lines = [line for line in done.stderr.splitlines() if name in line]
    assert [line.split(":")[0] for line in lines] == [f"{name} epoch 1/2", f"{name} epoch 2/2"]
    assert "val_acc" not in done.stderr and all("loss" in line and "val" in line for line in lines)


def test_corrupt_and_foreign_checkpoints_on_resume(cifar, tmp_path, capsys):
    args = (
        argv("train cifar10 --data {data} --out {out} --resume --set epochs=1", data=cifar, out=tmp_path)
        + TINY
    )
    folder = trained_in(tmp_path, "cifar10", args)
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"not a checkpoint at all")
    assert main(args) == 2
    assert "last.ckpt is corrupt or truncated" in capsys.readouterr().err
    save_atomic(folder / "last.ckpt", {"config": {"model": "resnet18_cifar"}, "model": {}})
    assert main(args) == 2
    assert "is from model 'resnet18_cifar', not 'resnet10s_cifar'" in capsys.readouterr().err
    save_atomic(
        folder / "last.ckpt", {"config": {"model": "resnet10s_cifar"}, "model": {"fc.weight": torch.zeros(1)}}
    )
    assert main(args) == 2
    assert (
        "does not fit this run's resnet10s_cifar: it is from another configuration" in capsys.readouterr().err
    )


@pytest.mark.slow
def test_bad_input_is_one_line(cifar, tmp_path, capsys):
    cases = [
        (
            ["train", "cifar10", "--data", str(tmp_path / "none"), "--out", str(tmp_path)],
            "cifar-10-batches-py lacks data_batch_1",
        ),
        (
            ["train", "cifar10", "--data", str(cifar), "--set", "lr=fast"],
            "--set lr=fast: lr takes a number, got 'fast'",
        ),
        (
            ["train", "cifar10", "--set", "modell=x"],
            "unknown key 'modell' (did you mean 'model'?); valid keys: dataset, model",
        ),
        (
            argv(
                "train cifar10 --data {data} --set model=resnet19_cifar --out {out}", data=cifar, out=tmp_path
            ),
            "unknown model 'resnet19_cifar'",
        ),
        (["train", "cifar10", "--set", "crop_size=32"], "crop_size does not apply to cifar10 runs"),
        (["train", "cifar10", "--devices", "abc"], "--devices takes a positive number or 'auto', got 'abc'"),
        (["train", "nope"], "no recipe 'nope'"),
    ]
    # the first in a fresh process, as a user meets it (import-time warnings included); the rest in this one
    done = srblock_cli(*cases[0][0])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and cases[0][1] in lines[0] and "Traceback" not in done.stderr, done.stderr
    for args, message in cases[1:]:
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        assert code == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert not (
        tmp_path / "cifar10" / "resnet19_cifar"
    ).exists()  # nothing written for a model that does not build


@pytest.mark.skipif(torch.cuda.is_available(), reason="float16 is refused where there is no GPU")
def test_float16_on_the_cpu_is_refused_not_silently_changed(cifar, tmp_path, capsys):
    line = "train cifar10 --data {data} --out {out} --precision 16-mixed"
    assert main(argv(line, data=cifar, out=tmp_path) + TINY) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "srblock train: error: --precision 16-mixed (float16) needs a CUDA GPU; "
        "on the CPU use bf16-mixed or 32-true"
    )
    assert not (tmp_path / "cifar10").exists()


def test_dataloader_path_trains(cifar, tmp_path):
    args = (
        argv(
            "train cifar10 --data {data} --out {out} --set epochs=1 --set loader=dataloader "
            "--set num_workers=0",
            data=cifar,
            out=tmp_path,
        )
        + TINY
    )
    assert main(args) == 0
    assert (trained_in(tmp_path, "cifar10", args) / "result.json").exists()


@pytest.mark.slow
def test_two_processes_on_cpu_write_one_checkpoint_and_agree_however_they_are_started(cifar, tmp_path):
    done = srblock_cli(
        *argv(
            "train cifar10 --data {data} --out {out} --accelerator cpu --devices 2 --set epochs=2 "
            "--set sr_stage=3",
            data=cifar,
            out=tmp_path,
        ),
        *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = trained_in(tmp_path, "cifar10", SR_WORDS)
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert not list(folder.glob(".*.tmp"))
    result = json.loads((folder / "result.json").read_text())
    assert result["world_size"] == 2
    assert len((folder / "metrics.csv").read_text().splitlines()) == 3
    # the synced test accuracy equals one process evaluating the best checkpoint on every image
    info, _, test = load_dataset("cifar10", cifar)
    model = build_model(make_config("cifar10", parse_set(["model=resnet10s_cifar", "sr_stage=3"]))).eval()
    model.load_state_dict(load_checkpoint(folder / "best.ckpt")["model"])
    mean = torch.tensor(info.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        pred = model((test.images.float() - mean) / std).argmax(1)
    assert result["test_acc"] == pytest.approx(100 * (pred == test.labels).float().mean().item(), abs=1e-4)
    # the same run on processes a cluster starts: two tasks with the variables srun sets (Fabric's
    # SLURMEnvironment) end with these weights (CPU, gloo)
    command = [*argv("train cifar10 --data {data} --accelerator cpu --devices 2", data=cifar)]
    command += SR_WORDS
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    slurm = dict(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
                 SLURM_JOB_ID="4242", SLURM_JOB_NAME="srblock", SLURM_NODELIST="127.0.0.1",
                 MASTER_PORT=str(port))  # fmt: skip
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "srblock", *command, "--out", str(tmp_path / "slurm")],
            env=cli_env(**slurm, SLURM_PROCID=str(k), SLURM_LOCALID=str(k)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    assert [task.wait(timeout=600) for task in tasks] == [0, 0], [t.stderr.read()[-2000:] for t in tasks]
    expected = load_checkpoint(folder / "last.ckpt")["model"]
    started = trained_in(tmp_path / "slurm", "cifar10", SR_WORDS)
    assert json.loads((started / "result.json").read_text())["world_size"] == 2
    weights = load_checkpoint(started / "last.ckpt")["model"]
    assert all(torch.equal(weights[k], expected[k]) for k in expected)


@pytest.mark.slow
@pytest.mark.parametrize("gpu_decode", [False, True])
def test_imagenet_one_epoch_end_to_end_with_top5(imagenet, tmp_path, gpu_decode):
    out = tmp_path / "runs"
    line = "train imagenet --data {data} --out {out} --quiet --set epochs=1 --set batch_size=4"
    line += " --set eval_batch_size=4 --set image_size=32 --set num_workers=1 --set sr_stage=3"
    line += " --set sr_memory_blocks=2"
    line += " --set lr=0.01"
    code = main(argv(line, data=imagenet, out=out) + ["--set", f"gpu_decode={str(gpu_decode).lower()}"])
    assert code == 0
    [path] = out.rglob("result.json")
    result = json.loads(path.read_text())
    assert 0 <= result["test_acc"] <= result["test_top5"] <= 100
    assert result["best_val_acc"] is None and result["best_epoch"] == 1  # no validation split: the last epoch
    assert result["sr_params"] > 0 and result["base_params"] == 25_557_032


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: __import__("shutil").rmtree(root / "val"), "val is missing"),
        (lambda root: (root / "val" / "n00000000").rename(root / "val" / "other"), "different class folders"),
        (
            lambda root: [p.unlink() for p in (root / "train" / "n00000001").iterdir()],
            "class folders without images",
        ),
    ],
)
def test_wrong_imagenet_layouts_are_clear_errors(tmp_path, damage, message, capsys):
    root = write_imagenet(tmp_path / "imagenet", per_class=1, val_per_class=1)
    damage(root)
    assert main(["train", "imagenet", "--data", str(root), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


@pytest.mark.slow
def test_imagenet_on_two_processes_with_uneven_validation_shards(tmp_path):
    """3 validation images, batch 1, 2 processes: 2 batches on one, 1 on the other; no hang, all counted."""
    root = write_imagenet(tmp_path / "imagenet", per_class=2, val_per_class=1)
    done = srblock_cli(
        *argv(
            "train imagenet --data {data} --out {out} --accelerator cpu --devices 2 --quiet "
            "--set model=resnet10s_cifar --set epochs=1 --set batch_size=2 --set eval_batch_size=1 "
            "--set image_size=32 --set num_workers=0",
            data=root,
            out=tmp_path / "runs",
        )
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = (tmp_path / "runs").rglob("result.json")
    result = json.loads(path.read_text())
    assert result["world_size"] == 2
    # the synced top-1 equals one process scoring the 3 images with the tested checkpoint
    model, _, input_size = trained_model(path.parent)
    _, _, val = load_dataset("imagenet", root)
    val = val.with_transform(imagenet_transform(False, 32))
    with torch.no_grad():
        hits = sum(int(model(val[i][0][None]).argmax(1).item() == val[i][1]) for i in range(len(val)))
    assert input_size == (3, 32, 32) and result["test_acc"] == pytest.approx(100 * hits / 3, abs=1e-4)


@pytest.mark.slow
def test_one_process_at_a_time_in_a_run_folder_and_a_broken_folder_does_not_stop_a_resume(
    cifar, tmp_path, capsys
):
    common = argv("train cifar10 --data {data} --out {out} --set epochs=2", data=cifar, out=tmp_path) + TINY
    env = cli_env(PAUSE_AT="3", MARKER=str(tmp_path / "m"))
    first = paused_run(common, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for args in (common, [*common, "--resume"]):  # (in this process: a second process all the same)
            assert main_one_thread(*args) == 0  # a second worker: it leaves the run to the first
            out = capsys.readouterr().out
            assert f"1 runs are trained by other workers, left to them: e.g. {tmp_path}" in out
            assert f"is in use by process {first.pid} (a run trains there)" in out
    finally:
        first.kill()
        first.wait()
    # a folder a typo'd model left before configs were written only once the model builds
    broken = tmp_path / "cifar10" / "resnet19_cifar" / "seed0"
    broken.mkdir(parents=True)
    (broken / "config.yaml").write_text("dataset: cifar10\nmodel: resnet19_cifar\n")
    assert main_one_thread("train", "cifar10", "--out", str(tmp_path), "--resume", "--quiet") == 0
    err = capsys.readouterr().err
    assert f"skipped {broken}: " in err and "unknown model 'resnet19_cifar'" in err
    assert (trained_in(tmp_path, "cifar10", common) / "result.json").exists()  # the dead run's lock: taken


@pytest.mark.slow
def test_a_diverging_run_stops_and_never_counts_as_finished(cifar, tmp_path, capsys):
    line = "train cifar10 --data {data} --out {out} --set lr=1e6 --seeds 0 1"
    assert main_one_thread(*argv(line, data=cifar, out=tmp_path), *TINY) == 2
    [line] = (
        capsys.readouterr().err.strip().splitlines()
    )  # seed 1 trained after seed 0 stopped; one line names both
    assert "training diverged in " in line and "at epoch 1: the training loss is" in line
    assert "train again with a smaller lr (now 1e+06, e.g. --set lr=0.1), after deleting " in line
    for seed in (0, 1):
        folder = trained_in(tmp_path, "cifar10", ["--set", "lr=1e6", *TINY], seed)
        assert not (folder / "result.json").exists() and not (folder / "last.ckpt").exists()
        assert (folder / "diverged.txt").read_text().strip() in line


@pytest.mark.slow
def test_ctrl_c_mid_epoch_says_where_and_how_to_go_on(cifar, tmp_path):
    common = argv("train cifar10 --data {data} --out {out} --set epochs=2", data=cifar, out=tmp_path) + TINY
    env = cli_env(PAUSE_AT="13", MARKER=str(tmp_path / "m"))
    run = paused_run(common, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run.send_signal(signal.SIGINT)  # 4 steps into epoch 2
    _, err = run.communicate(timeout=60)
    folder = trained_in(tmp_path, "cifar10", common)
    assert run.returncode == 130
    assert err.strip() == (
        f"srblock train: interrupted in {folder}, whose last.ckpt is after epoch 1; "
        f"continue with: {shlex.join(['srblock', *common, '--resume'])}"
    )
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 1 and not (folder / ".lock").exists()


# `srblock train`, killed by SIGKILL at a chosen write: right after the metrics row of epoch 2 (before
# its last.ckpt), or in the middle of rewriting metrics.csv on a resume (after the temporary file,
# before the rename).
KILL_AT_WRITE = """
import os, signal, sys
from srblock import atomic_files, run_folder
from srblock.cli import main

if os.environ["KILL_WHERE"] == "after-row":
    append, rows = run_folder.MetricsLog.append, []
    def append_then_die(self, row):
        append(self, row)
        rows.append(row)
        if len(rows) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    run_folder.MetricsLog.append = append_then_die
else:
    replace = os.replace
    def die_before_renaming_metrics(src, dst):
        if str(dst).endswith("metrics.csv"):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)
    atomic_files.os.replace = die_before_renaming_metrics
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kills_between_a_row_and_its_checkpoint_or_during_the_rewrite_lose_nothing(cifar, tmp_path):
    common = argv("train cifar10 --data {data} --out {out} --set epochs=3", data=cifar, out=tmp_path) + TINY
    folder = trained_in(tmp_path, "cifar10", common)
    env = cli_env()

    def killed(where: str, *extra: str) -> int:
        run = [sys.executable, "-c", KILL_AT_WRITE, *common, *extra]
        return subprocess.run(
            run, env={**env, "KILL_WHERE": where}, capture_output=True, check=False
        ).returncode

    assert killed("after-row") == -signal.SIGKILL
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 1  # epoch 2's row written, its checkpoint not
    assert [r.split(",")[0] for r in (folder / "metrics.csv").read_text().splitlines()] == ["epoch", "1", "2"]
    before = (folder / "metrics.csv").read_text()
    assert killed("rewrite", "--resume") == -signal.SIGKILL  # killed before renaming the rewritten table
    assert (folder / "metrics.csv").read_text() == before and list(folder.glob(".metrics.csv.*.tmp"))
    assert main_one_thread(*common, "--resume") == 0
    assert [r.split(",")[0] for r in (folder / "metrics.csv").read_text().splitlines()] == [
        "epoch",
        "1",
        "2",
        "3",
    ]
    assert not list(folder.glob(".*.tmp"))  # the leftover cleaned when the folder was claimed


def test_a_warm_up_as_long_as_the_run_still_reaches_the_full_lr():
    from srblock.config import with_seeds
    from srblock.train.schedule import classify_factor

    def factors(schedule: str, epochs: int, warmup: int) -> list[float]:
        kw = dict(schedule=schedule, epochs=epochs, milestones=[], gamma=0.2, warmup=warmup)
        return [classify_factor(e, **kw) for e in range(epochs)]

    assert factors("cosine", 3, 3) == pytest.approx([1 / 3, 2 / 3, 1.0])  # the folder recipe's 3 of 3
    assert factors("step", 1, 3) == [1.0] and factors("step", 5, 2) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    # one seed named twice trains once
    assert [c.seed for c in with_seeds(make_config("cifar10", {}), [3, 3, 1])] == [3, 1]


def test_a_loss_no_learning_network_reaches_stops_the_run(tmp_path):
    import types

    from srblock.train.engine import Run

    rank0 = types.SimpleNamespace(global_rank=0)
    run = Run(rank0, make_config("cifar10", {"lr": 1e6}), tmp_path, None, None, None, None, None, "epoch")
    run.check_finite(2.3, "epoch 1")  # a loss a network has
    # a large validation loss early on (BatchNorm's running statistics after a few steps at lr 0.1)
    # is a number to record: only one that is not a number stops the run
    run.check_finite(6.13e6, "epoch 1", "validation loss")
    assert not (tmp_path / "diverged.txt").exists()
    with pytest.raises(
        ValueError,
        match=(
            "at epoch 1: the training loss is 1.3e\\+27; train again with a smaller lr "
            f"\\(now 1e\\+06, e.g. --set lr=0.1\\), after deleting {tmp_path} \\(or in another --out\\)"
        ),
    ):
        run.check_finite(1.3e27, "epoch 1")  # finite, and beyond any a network that learns has
    with pytest.raises(ValueError, match="at epoch 2: the validation loss is nan") as stopped:
        run.check_finite(float("nan"), "epoch 2", "validation loss")
    assert (tmp_path / "diverged.txt").read_text().strip() == str(stopped.value)
    # a diversity term that swamps the loss is named before the lr
    swamped = make_config("fashion_mnist", {"sr_stage": 3, "sr_diversity": 1e6})
    run = Run(rank0, swamped, tmp_path, None, None, None, None, None, "epoch")
    with pytest.raises(
        ValueError,
        match="train again with a smaller sr_diversity \\(now 1e\\+06, e.g. "
        "--set sr_diversity=0.1\\) or a smaller lr",
    ):
        run.check_finite(float("inf"), "epoch 1")
    # the SR block's settings that can blow up are named where the run changed them
    cold = make_config("fashion_mnist", {"sr_stage": 3, "sr_temperature": 0.001, "sr_memory_init": "normal"})
    run = Run(rank0, cold, tmp_path, None, None, None, None, None, "epoch")
    with pytest.raises(
        ValueError,
        match=(
            "or sr_temperature nearer 1, the paper's \\(now 0.001\\) "
            "or a smaller sr_memory_init_scale \\(now 0.3\\)"
        ),
    ):
        run.check_finite(float("inf"), "epoch 1")


@pytest.mark.slow
def test_a_healthy_run_whose_early_validation_loss_is_large_trains_to_the_end(tmp_path):
    """Real Fashion-MNIST pictures, 3 classes x 60, ResNet18 at lr 0.1 for one epoch of 9 steps: the
    validation loss after it is about 1e6 (BatchNorm's running statistics after 9 steps), which is
    no divergence: the run finishes and counts."""
    data = write_image_folder(tmp_path / "data", per_class=(60, 0, 0), test=False)
    shutil.rmtree(data / "val")
    line = (
        "train folder --data {data} --out {out} --seeds 0 --set epochs=1 --set batch_size=20 "
        "--set image_size=32 --set model=resnet18_cifar --quiet"
    )
    assert main_one_thread(*argv(line, data=data, out=tmp_path / "runs")) == 0
    [folder] = (tmp_path / "runs" / "folder").glob("*/seed0")
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert float(rows[1].split(",")[4]) > 1e4  # the validation loss that stopped it before
    assert (folder / "result.json").is_file() and not (folder / "diverged.txt").exists()


@pytest.mark.slow
def test_a_healthy_cifar_run_whose_validation_loss_climbs_early_trains_to_the_end(tmp_path):
    """The issue's second healthy run: CIFAR-100 held in memory (random pictures), ResNet18 with
    an SR block at lr 0.1, 4 steps an epoch. Its validation loss after the first epoch is tens of
    times its training loss as BatchNorm's running statistics lag (such a run was stopped at 1.29e4)."""
    data = write_cifar100(tmp_path / "data", train=300, test=60)
    line = (
        "train cifar100 --data {data} --out {out} --seeds 0 --set model=resnet18_cifar --set sr_stage=3 "
        "--set epochs=1 --set batch_size=60 --set limit_train=240 --set limit_test=60 --quiet"
    )
    assert main_one_thread(*argv(line, data=data, out=tmp_path / "runs")) == 0
    [folder] = (tmp_path / "runs" / "cifar100").glob("*/seed0")
    header, *rows = (row.split(",") for row in (folder / "metrics.csv").read_text().splitlines())
    train, val = header.index("train_loss"), header.index("val_loss")
    assert max(float(r[val]) / float(r[train]) for r in rows) > 10  # far above the training loss
    assert (folder / "result.json").is_file() and not (folder / "diverged.txt").exists()
