"""The training engine end to end on small CIFAR-layout files the tests write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srblock.cli import main
from srblock.train.checkpoint import load_checkpoint, save_atomic
from srblock.train.config import KEYS, make_config, parse_set
from srblock.train.schedule import multistep_factor

from .datagen import write_cifar10

# the CIFAR files written here are not the official ones: the checksum warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")

TINY = ["--set", "model=resnet10s_cifar", "--set", "batch_size=32", "--set", "eval_batch_size=64", "--quiet"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("data"), per_batch=60, test=80)


class Payload:
    """An object a checkpoint must not be able to smuggle in."""


def srblock_cli(*args: str, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "srblock", *args], capture_output=True, text=True, env=env, timeout=600, **kw)


def test_schedule_is_the_papers():
    factors = [multistep_factor(e, [60, 120, 160], 0.2) for e in (0, 59, 60, 119, 120, 160, 199)]
    assert factors == pytest.approx([1, 1, 0.2, 0.2, 0.04, 0.008, 0.008])


def test_recipes_are_the_papers():
    c100 = make_config("cifar100")
    assert (c100.lr, c100.momentum, c100.weight_decay, c100.batch_size, c100.epochs) == (0.1, 0.9, 5e-4, 128, 200)
    assert (c100.milestones, c100.gamma, c100.val_fraction, c100.crop_padding, c100.flip) == ([60, 120, 160], 0.2, 0.1, 4, True)
    c10 = make_config("cifar10")
    assert (c10.weight_decay, c10.milestones, c10.gamma, c10.epochs) == (1e-4, [90, 136], 0.1, 182)


def test_set_overrides_and_errors(tmp_path):
    cfg = make_config("cifar100", parse_set(["model=resnet34_cifar", "sr_stage=3", "lr=0.05", "milestones=[1, 2]", "attn=se"]))
    assert (cfg.model, cfg.sr_stage, cfg.lr, cfg.milestones, cfg.attn) == ("resnet34_cifar", 3, 0.05, [1, 2], "se")
    with pytest.raises(ValueError) as err:
        parse_set(["lrr=0.1"])
    assert "unknown key 'lrr' (did you mean 'lr'?); valid keys: " + ", ".join(KEYS) in str(err.value)
    with pytest.raises(ValueError, match="--set epochs=ten: epochs takes an int, got 'ten'"):
        parse_set(["epochs=ten"])
    with pytest.raises(ValueError, match="--set limit_train=1.5: limit_train takes an int or null"):
        parse_set(["limit_train=1.5"])
    with pytest.raises(ValueError, match="cifar100-table1 is a sweep, not a recipe"):
        make_config("cifar100-table1")
    own = tmp_path / "mine.yaml"
    own.write_text("dataset: cifar10\nmodel: resnet10s_cifar\nepochs: 3\n")
    assert make_config(str(own)).epochs == 3
    own.write_text("dataset: cifar10\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown key 'epoch' \\(did you mean 'epochs'\\?\\)"):
        make_config(str(own))


def test_checkpoints_are_atomic_and_checked(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(path, {"config": {"model": "resnet18_cifar"}, "epoch": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left
    assert load_checkpoint(path, "resnet18_cifar")["epoch"] == 3
    with pytest.raises(ValueError, match="is from model 'resnet18_cifar', not 'vgg16_bn_cifar': choose another --out"):
        load_checkpoint(path, "vgg16_bn_cifar")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="last.ckpt is corrupt or truncated .*: delete it to start that run over"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="is not an srblock training checkpoint"):
        load_checkpoint(path)
    # weights_only refuses arbitrary objects: a clear error, not code execution
    torch.save({"format": "srblock-checkpoint-1", "x": Payload()}, path)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_train_writes_a_complete_run_folder_per_seed(cifar, tmp_path, capsys):
    args = ["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path), "--set", "epochs=2", "--set", "sr_stage=3", "--seeds", "0", "1", *TINY]
    assert main(args) == 0
    seeds = sorted((tmp_path / "cifar10" / "resnet10s_cifar-sr3p4h8").iterdir())
    assert [p.name for p in seeds] == ["seed0", "seed1"]
    for folder in seeds:
        names = {p.name for p in folder.iterdir()}
        assert {"config.yaml", "metrics.csv", "tensorboard", "last.ckpt", "best.ckpt", "result.json"} <= names
        assert any(p.name.startswith("events.out.tfevents") for p in (folder / "tensorboard").rglob("*"))
        lines = (folder / "metrics.csv").read_text().splitlines()
        assert lines[0] == "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds" and len(lines) == 3
        result = json.loads((folder / "result.json").read_text())
        assert 0 <= result["test_acc"] <= 100 and result["epochs"] == 2
        assert result["sr_params"] > 0 and result["oh_pct"] == pytest.approx(100 * result["sr_params"] / result["base_params"])
        assert {"torch", "timm", "lightning", "srblock"} <= set(result["versions"]) and result["wall_time_s"] > 0
        best = load_checkpoint(folder / "best.ckpt", "resnet10s_cifar")
        assert best["epoch"] == result["best_epoch"] + 1
    r0, r1 = (json.loads((f / "result.json").read_text()) for f in seeds)
    assert r0["seed"] == 0 and r1["seed"] == 1
    out = capsys.readouterr().out
    assert "seed0" in out and "test_acc" in out
    # a finished run is not trained again
    assert main(args) == 0
    assert "is finished (result.json): skipped" in capsys.readouterr().out


def test_same_seed_same_result(cifar, tmp_path):
    for out in ("a", "b"):
        main(["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path / out), "--set", "epochs=1", *TINY])
    a, b = (load_checkpoint(tmp_path / o / "cifar10" / "resnet10s_cifar" / "seed0" / "last.ckpt") for o in "ab")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_killed_run_resumes_to_the_same_weights(cifar, tmp_path):
    common = ["train", "cifar10", "--data", str(cifar), "--set", "epochs=3", "--set", "sr_stage=3", *TINY]
    straight = srblock_cli(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    folder = tmp_path / "killed" / "cifar10" / "resnet10s_cifar-sr3p4h8" / "seed0"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "srblock", *common, "--out", str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not (folder / "last.ckpt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # in the middle of epoch 2
    proc.wait()
    assert (folder / "last.ckpt").exists() and not (folder / "result.json").exists()
    assert load_checkpoint(folder / "last.ckpt")["epoch"] < 3

    again = srblock_cli(*common, "--out", str(tmp_path / "killed"))
    assert again.returncode == 2
    assert again.stderr.strip().endswith("holds an unfinished run: add --resume to continue it, or choose another --out")

    resumed = srblock_cli("train", "cifar10", "--data", str(cifar), "--out", str(tmp_path / "killed"), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(folder / "last.ckpt")
    b = load_checkpoint(tmp_path / "straight" / "cifar10" / "resnet10s_cifar-sr3p4h8" / "seed0" / "last.ckpt")
    assert a["epoch"] == b["epoch"] == 3
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert json.loads((folder / "result.json").read_text())["test_acc"] == json.loads(
        (tmp_path / "straight" / "cifar10" / "resnet10s_cifar-sr3p4h8" / "seed0" / "result.json").read_text())["test_acc"]
    assert len((folder / "metrics.csv").read_text().splitlines()) == 4  # one row per epoch, none twice


def test_corrupt_and_foreign_checkpoints_on_resume(cifar, tmp_path, capsys):
    folder = tmp_path / "cifar10" / "resnet10s_cifar" / "seed0"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"not a checkpoint at all")
    args = ["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path), "--resume", "--set", "epochs=1", *TINY]
    assert main(args) == 2
    assert "last.ckpt is corrupt or truncated" in capsys.readouterr().err
    save_atomic(folder / "last.ckpt", {"config": {"model": "resnet18_cifar"}, "model": {}})
    assert main(args) == 2
    assert "is from model 'resnet18_cifar', not 'resnet10s_cifar'" in capsys.readouterr().err


def test_bad_input_is_one_line(cifar, tmp_path):
    cases = [
        (["train", "cifar10", "--data", str(tmp_path / "none"), "--out", str(tmp_path)], "cifar-10-batches-py lacks data_batch_1"),
        (["train", "cifar10", "--data", str(cifar), "--set", "lr=fast"], "--set lr=fast: lr takes a number, got 'fast'"),
        (["train", "cifar10", "--set", "modell=x"], "unknown key 'modell' (did you mean 'model'?); valid keys: dataset, model"),
        (["train", "cifar10", "--data", str(cifar), "--set", "model=resnet19_cifar", "--out", str(tmp_path)], "unknown model 'resnet19_cifar'"),
        (["train", "nope"], "no recipe 'nope'"),
        (["table", str(tmp_path / "empty")], "does not exist"),
    ]
    for args, message in cases:
        done = srblock_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_dataloader_path_trains(cifar, tmp_path):
    args = ["train", "cifar10", "--data", str(cifar), "--out", str(tmp_path), "--set", "epochs=1", "--set", "loader=dataloader", "--set", "num_workers=0", *TINY]
    assert main(args) == 0
    assert (tmp_path / "cifar10" / "resnet10s_cifar" / "seed0" / "result.json").exists()


def test_sweep_skips_finished_runs(cifar, tmp_path, capsys):
    sweep = tmp_path / "mini-sweep.yaml"
    sweep.write_text(
        "description: two rows\nrecipe: cifar10\nset: {model: resnet10s_cifar, epochs: 1, batch_size: 32}\nseeds: [0]\n"
        "runs:\n  - {name: R10s}\n  - {name: R10s + SR, sr_stage: 3, sr_blocks: 2, paper: {acc: 50.0, std: 1.0}}\n"
    )
    args = ["sweep", str(sweep), "--data", str(cifar), "--out", str(tmp_path / "runs"), "--quiet"]
    assert main(args) == 0
    assert "2 runs: 0 were finished already, 2 trained now" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 runs: 2 were finished already, 0 trained now" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "runs"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["R10s", "R10s + SR"]
    assert rows[1]["M"] == 3 and rows[1]["P"] == 2 and rows[1]["paper_acc_mean"] == 50.0 and rows[1]["seeds"] == 1


def fabricate(root: Path, config: str, seed: int, acc: float, **extra) -> None:
    folder = root / config / f"seed{seed}"
    folder.mkdir(parents=True)
    result = {"test_acc": acc, "oh_pct": 1.09, "sr_oh_pct": 0.3, "config": {"sr_stage": 3, "sr_blocks": 2}, **extra}
    (folder / "result.json").write_text(json.dumps(result))


def test_table_mean_and_sample_std(tmp_path, capsys):
    for seed, acc in enumerate([76.0, 77.0, 78.0]):
        fabricate(tmp_path, "r18-se-sr", seed, acc, name="R18 + SE + SR", table="II", row=1, paper={"acc": 76.86, "std": 0.21, "oh": 1.09})
    for seed, acc in enumerate([70.0, 71.0]):
        fabricate(tmp_path, "r18-se", seed, acc, name="R18 + SE", table="II", row=0)
    assert main(["table", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "R18 + SE " in lines[2] and "70.50 ± 0.71" in lines[2]
    assert "R18 + SE + SR" in lines[3] and "77.00 ± 1.00" in lines[3] and "76.86 ± 0.21" in lines[3] and "1.09" in lines[3]
    assert main(["table", str(tmp_path), "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith("table,name,M,P,seeds,test_acc_mean,test_acc_std")
    assert csv_lines[2].startswith("II,R18 + SE + SR,3,2,3,77.0,1.0")


def test_two_processes_on_cpu_write_one_checkpoint_and_agree(cifar, tmp_path):
    done = srblock_cli("train", "cifar10", "--data", str(cifar), "--out", str(tmp_path), "--accelerator", "cpu",
                       "--devices", "2", "--set", "epochs=2", "--set", "sr_stage=3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "cifar10" / "resnet10s_cifar-sr3p4h8" / "seed0"
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert not list(folder.glob(".*.tmp"))
    result = json.loads((folder / "result.json").read_text())
    assert result["world_size"] == 2
    assert len((folder / "metrics.csv").read_text().splitlines()) == 3
    # the synced test accuracy equals one process evaluating the best checkpoint on every image
    from srblock.data import load_dataset
    from srblock.train.loop import build_model

    info, _, test = load_dataset("cifar10", cifar)
    cfg = make_config("cifar10", parse_set(["model=resnet10s_cifar", "sr_stage=3"]))
    model = build_model(cfg, 10, info.input_size).eval()
    model.load_state_dict(load_checkpoint(folder / "best.ckpt")["model"])
    mean = torch.tensor(info.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        pred = model((test.images.float() - mean) / std).argmax(1)
    assert result["test_acc"] == pytest.approx(100 * (pred == test.labels).float().mean().item(), abs=1e-4)


def test_demo_tiny(tmp_path):
    root = tmp_path / "fm"
    from .datagen import write_fashion_mnist

    write_fashion_mnist(root, train=300, test=60)
    done = srblock_cli("demo", "--tiny", "--data", str(root), "--out", str(tmp_path / "runs"), "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resnet10s_cifar + SR" in done.stdout and "sr_oh_pct" in done.stdout
    assert (tmp_path / "runs" / "demo-tiny" / "resnet10s_cifar-sr3p4h8" / "seed0" / "result.json").exists()


def test_recipes_command(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert lines["cifar100"] == "recipe" and lines["cifar100-table1"] == "sweep" and lines["fashion_mnist"] == "recipe"
