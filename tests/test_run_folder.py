"""Run folders: checkpoints, config.yaml (also as earlier versions wrote it), metrics.csv, result.json,
and reading a finished run back without the training stack."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from srblock.atomic_files import remove_stale_temporaries
from srblock.checkpoint import load_checkpoint, save_atomic
from srblock.keys import make_config, parse_set
from srblock.run_folder import MetricsLog, RunFolder, unfinished_runs
from srblock.run_lock import RunHeld, RunLock, claim_lost
from srblock.run_model import trained_model
from srblock.splits import data_root

# config.yaml of a Fashion-MNIST run as srblock 0.1.0 wrote it before configs were split by task:
# every key of every task, and sr_blocks 4 without an SR block
LEGACY_CONFIG = """\
dataset: fashion_mnist
model: resnet10s_cifar
attn: null
reg: null
reg_rate: null
sr_stage: null
sr_blocks: 4
sr_hidden: 8
sr_squeeze: 1
epochs: 4
batch_size: 128
lr: 0.1
momentum: 0.9
nesterov: true
weight_decay: 0.0005
milestones: [2, 3]
gamma: 0.1
val_fraction: 0.1
crop_padding: 2
flip: true
seed: 0
precision: auto
compile: false
channels_last: true
loader: fast
num_workers: 2
eval_batch_size: 512
limit_train: null
limit_test: null
image_size: 224
gpu_decode: false
iterations: 80000
eval_interval: 8000
save_interval: 1000
poly_power: 0.9
min_lr: 0.0001
crop_size: 512x1024
scale_range: [0.5, 2.0]
photometric: true
aux_weight: 0.4
ms_scales: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
ms_flip: true
"""


class Payload:
    """An object a checkpoint must not be able to smuggle in."""


def test_checkpoints_are_atomic_and_checked(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(path, {"config": {"model": "resnet18_cifar"}, "epoch": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left
    assert load_checkpoint(path, "resnet18_cifar")["epoch"] == 3
    with pytest.raises(
        ValueError, match="is from model 'resnet18_cifar', not 'vgg16_bn_cifar': choose another --out"
    ):
        load_checkpoint(path, "vgg16_bn_cifar")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(
        ValueError, match="last.ckpt is corrupt or truncated .*: delete it to start that run over"
    ):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="is not an srblock training checkpoint"):
        load_checkpoint(path)
    # weights_only refuses arbitrary objects: a clear error, not code execution
    torch.save({"format": "srblock-checkpoint-1", "x": Payload()}, path)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)


def claim(folder: Path, cfg):
    """What a run's start does with its folder: checks it holds cfg's run (or none), then claims it."""
    run = RunFolder(folder)
    cfg = run.check(cfg)
    run.claim(cfg)
    return cfg


def test_a_run_folder_written_before_configs_were_split_still_loads(tmp_path):
    folder = tmp_path / "demo" / "resnet10s_cifar" / "seed0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(LEGACY_CONFIG)
    cfg = RunFolder(folder).config()
    # other tasks' keys dropped, no P without an SR block; compile: false as then, not today's auto
    assert cfg == make_config("fashion_mnist", {"compile": "false"})
    claim(folder, make_config("fashion_mnist", {"compile": "false"}))  # the same run: resumable
    assert (folder / "config.yaml").read_text() == LEGACY_CONFIG  # nothing to rewrite
    with pytest.raises(ValueError, match="holds a run of another configuration \\(epochs: 4 -> 5\\)"):
        claim(folder, make_config("fashion_mnist", {"epochs": 5}))
    (folder / "config.yaml").write_text(LEGACY_CONFIG + "warmup: 5\n")
    with pytest.raises(ValueError, match="config.yaml: unknown key 'warmup'"):
        RunFolder(folder).config()
    for text, message in [
        ("- a list\n", "is not a run's config"),
        ("", "is not a run's config"),
        ("model: [1, 2\n", "is not valid YAML"),
        (b"\xff\xfe", "is not valid YAML"),
    ]:
        path = folder / "config.yaml"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        with pytest.raises(ValueError, match=f"config.yaml {message}"):
            RunFolder(folder).config()


def test_config_yaml_holds_the_runs_own_fields_and_its_data_folder(tmp_path):
    cfg = make_config("cityscapes", {**parse_set(["sr_stage=2"]), "data_dir": str(tmp_path)})
    folder = RunFolder.of(tmp_path / "runs", "cityscapes", cfg).path
    assert folder.parts[-2:] == ("deeplabv3_r50_d8-sr2p2h8", "seed0") == (cfg.folder_name(), "seed0")
    claim(folder, cfg)
    written = yaml.safe_load((folder / "config.yaml").read_text())
    assert written["data_dir"] == str(tmp_path) and written["sr_memory_blocks"] == 2
    assert "epochs" not in written and "crop_size" in written
    assert RunFolder(folder).config() == cfg
    # the data moved: the same run, its new place recorded
    moved = dataclasses.replace(cfg, data_dir=str(tmp_path / "elsewhere"))
    claim(folder, moved)
    assert RunFolder(folder).config().data_dir == str(tmp_path / "elsewhere")
    assert unfinished_runs(tmp_path / "runs") == [folder] and not RunFolder(folder).finished(cfg)
    # a resume that names no data folder goes on with the remembered one
    assert claim(folder, dataclasses.replace(cfg, data_dir=None)).data_dir == str(tmp_path / "elsewhere")
    assert RunFolder(folder).config().data_dir == str(tmp_path / "elsewhere")
    # so may its precision (how it runs, not what it computes); config.yaml says what it runs with now
    claim(folder, dataclasses.replace(moved, precision="bf16-mixed"))
    assert RunFolder(folder).config().precision == "bf16-mixed" and "precision" not in cfg.identity()


def test_data_root_is_the_remembered_folder_unless_given(tmp_path):
    cfg = make_config("fashion_mnist", {"data_dir": str(tmp_path)})
    assert data_root(cfg) == tmp_path and data_root(cfg, "/given").as_posix() == "/given"
    assert data_root(make_config("fashion_mnist")) is None  # the default place
    gone = dataclasses.replace(cfg, data_dir=str(tmp_path / "gone"))
    with pytest.raises(
        FileNotFoundError, match="the data folder this run was trained from, is gone: pass --data DIR"
    ):
        data_root(gone)


def test_a_finished_run_of_another_configuration_is_an_error_not_skipped(tmp_path):
    cfg = make_config("fashion_mnist")
    folder = RunFolder.of(tmp_path, "fashion_mnist", cfg).path
    claim(folder, cfg)
    RunFolder(folder).write_result({"test_acc": 90.0})
    assert RunFolder(folder).finished(cfg)
    with pytest.raises(ValueError, match="holds a run of another configuration \\(lr: 0.1 -> 0.2\\)"):
        RunFolder(folder).finished(dataclasses.replace(cfg, lr=0.2))


def test_result_json_is_read_or_named(tmp_path):
    RunFolder(tmp_path).write_result({"test_acc": 1.5})
    assert RunFolder(tmp_path).result() == {"test_acc": 1.5}
    (tmp_path / "result.json").write_text("{broken")
    with pytest.raises(ValueError, match="result.json is not valid JSON: delete it and resume that run"):
        RunFolder(tmp_path).result()
    (tmp_path / "result.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="result.json is not a run's result"):
        RunFolder(tmp_path).result()


def test_metrics_log_keeps_the_rows_before_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, 0, ("epoch", "loss"))
    for epoch in (1, 2, 3):  # (numbered from 1)
        log.append({"epoch": epoch, "loss": 1.0 / epoch})
    MetricsLog(path, 3, ("epoch", "loss"))  # resumed from a checkpoint after 2 epochs: row 3 goes
    assert path.read_text().splitlines() == ["epoch,loss", "1,1.0", "2,0.5"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_reading_results_does_not_import_lightning():
    """analyze, report, export and the run folders need no training stack (nor its start-up time)."""
    code = (
        "import sys; import srblock.cli, srblock.analysis, srblock.analysis.report, srblock.export, "
        "srblock.run_folder, "
        "srblock.results, srblock.bench; "
        "print(sorted(m for m in sys.modules "
        "if m == 'lightning' or m.startswith(('lightning.', 'tensorboard'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_flipped_byte_in_a_checkpoint_is_caught(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(path, {"config": {"model": "m"}, "model": {"w": torch.arange(1000, dtype=torch.float32)}})
    assert load_checkpoint(path)["model"]["w"][999] == 999
    raw = bytearray(path.read_bytes())
    at = raw.find(torch.tensor(500.0).numpy().tobytes())  # inside the stored weights
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(
        ValueError, match="last.ckpt is corrupt \\(its tensors do not match their checksum\\)"
    ):
        load_checkpoint(path)


def test_atomic_files_honour_the_umask_and_leftovers_are_cleaned_when_a_folder_is_claimed(tmp_path):
    old = os.umask(0o022)
    try:
        RunFolder(tmp_path).write_result({"test_acc": 1.0})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o644  # readable by collaborators
    cfg = make_config("fashion_mnist")
    folder = tmp_path / "run"
    claim(folder, cfg)
    (folder / ".last.ckpt.abc123.tmp").write_bytes(b"x" * 100)  # what a kill during a write leaves
    RunFolder(folder).check(cfg)
    assert (folder / ".last.ckpt.abc123.tmp").exists()  # only the process that writes cleans
    claim(folder, cfg)
    assert not list(folder.glob(".*.tmp"))


def test_a_write_or_export_deletes_what_a_killed_one_left_of_the_same_file(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = socket.gethostname().split(".")[0]
    stale = tmp_path / f".model.onnx.{int(dead.stdout)}@{host}.x1y2.tmp"  # a killed export's 23 MB
    live = tmp_path / f".model.onnx.{os.getpid()}@{host}.z3w4.tmp"  # an export going on now
    other = tmp_path / f".result.json.{int(dead.stdout)}@{host}.q5.tmp"  # another file's: not this write's
    for path in (stale, live, other):
        path.write_bytes(b"x" * 100)
    remove_stale_temporaries(tmp_path / "model.onnx")
    assert not stale.exists() and live.exists() and other.exists()
    RunFolder(tmp_path).write_result({"test_acc": 1.0})  # every atomic write cleans up after its own file
    assert not other.exists() and json.loads((tmp_path / "result.json").read_text()) == {"test_acc": 1.0}


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A file system of `size` mounted at `folder` (tmpfs), unmounted after; skips where none can be."""
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_keeps_the_previous_file_and_says_so(tmp_path):
    with small_disk(tmp_path / "small", "1m") as small:
        save_atomic(small / "last.ckpt", {"config": {"model": "m"}, "model": {"w": torch.zeros(1000)}})
        with pytest.raises(
            ValueError, match="no space left on device while writing .*last.ckpt; the previous file is kept"
        ):
            save_atomic(
                small / "last.ckpt", {"config": {"model": "m"}, "model": {"w": torch.zeros(1_000_000)}}
            )
        assert load_checkpoint(small / "last.ckpt")["model"]["w"].shape == (1000,)
        assert not list(small.glob(".*.tmp"))


def test_a_full_disk_with_room_left_after_the_failed_write_is_still_one_line(tmp_path):
    """torch.save reports a full disk as a RuntimeError raised while handling the OSError that says
    so; once its temporary file is gone the disk has room again (a stacked run's last.ckpt on a
    nearly full disk was a 60-line traceback)."""
    with small_disk(tmp_path / "small", "4m") as small:
        save_atomic(small / "last.ckpt", {"config": {"model": "m"}, "model": {"w": torch.zeros(250_000)}})
        with pytest.raises(ValueError, match="no space left on device while writing .*last.ckpt"):
            save_atomic(small / "last.ckpt", {"config": {"model": "m"}, "model": {"w": torch.zeros(850_000)}})
        assert shutil.disk_usage(small).free > 1 << 20  # room again: the old rule called it another error
        assert load_checkpoint(small / "last.ckpt")["model"]["w"].shape == (250_000,)


def test_corrupt_metrics_is_named(tmp_path):

    (tmp_path / "metrics.csv").write_text("epoch,lr\n0,zero\n")
    with pytest.raises(
        ValueError, match="metrics.csv is not a metrics table .*: delete it; --resume writes it anew"
    ):
        RunFolder(tmp_path).metrics()
    with pytest.raises(ValueError, match="metrics.csv is not a metrics table"):
        MetricsLog(tmp_path / "metrics.csv", 1, ("epoch", "lr"))
    (tmp_path / "metrics.csv").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="metrics.csv is not a metrics table"):
        RunFolder(tmp_path).metrics()
    (tmp_path / "metrics.csv").write_text("iteration,loss\n")
    with pytest.raises(ValueError, match="metrics.csv has columns iteration, loss, not epoch, lr: delete it"):
        MetricsLog(tmp_path / "metrics.csv", 1, ("epoch", "lr"))


def test_a_finished_run_without_its_tested_checkpoint_says_so(tmp_path):
    cfg = make_config("fashion_mnist")
    claim(tmp_path, cfg)
    with pytest.raises(FileNotFoundError, match="has no best.ckpt yet: finish the run first"):
        trained_model(tmp_path)
    RunFolder(tmp_path).write_result({"test_acc": 1.0})
    with pytest.raises(
        FileNotFoundError, match="is finished \\(result.json\\) but its tested checkpoint best.ckpt is gone"
    ):
        trained_model(tmp_path)


def test_the_lock_refuses_a_second_process_and_takes_over_a_dead_ones(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert (folder / ".lock").read_text().split()[0] == str(os.getpid())
        with pytest.raises(RunHeld, match=f"is in use by process {os.getpid()} \\(a run trains there\\)"):
            RunLock(folder).__enter__()
    assert not folder.exists()  # nothing was written: no folder left behind
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    folder.mkdir()
    (folder / ".lock").write_text(f"{dead.stdout.strip()} {socket.gethostname()}")
    with RunLock(folder):  # the dead process's lock is taken over
        assert (folder / ".lock").read_text().split()[0] == str(os.getpid())
    # another host's claim is a lease: live while its holder renews it, taken over once it runs out
    (folder / ".lock").write_text("4242 another-host")
    with pytest.raises(RunHeld, match="in use by process 4242 on another-host \\(its claim renewed 0 s ago"):
        RunLock(folder).__enter__()
    stale = time.time() - 601  # not renewed for longer than the lease (600 s)
    os.utime(folder / ".lock", (stale, stale))
    with RunLock(folder):  # taken over: the run resumes from its last checkpoint here
        assert (folder / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}"
    # a live process of this host whose claim is not renewed: its pid was reused by another
    (folder / ".lock").write_text(f"{os.getppid()} {socket.gethostname()}")
    os.utime(folder / ".lock", (stale, stale))
    with RunLock(folder):
        pass
    # a SLURM job requeued (on another node) takes its own claim back at once
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    (folder / ".lock").write_text("4242 another-host 77_3")
    with RunLock(folder):
        assert (folder / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()} 77_3"
    # another worker taking the same stale claim over right now: left to it
    (folder / ".lock").write_text("4242 another-host")
    os.utime(folder / ".lock", (stale, stale))
    (folder / ".lock.breaking").write_text("")
    with pytest.raises(RunHeld, match="is being taken over by another worker"):
        RunLock(folder).__enter__()


def test_a_claim_is_renewed_while_held_and_one_taken_over_is_noted_lost_and_left(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBLOCK_LEASE_SECONDS", "0.2")  # a heartbeat of 0.05 s
    folder = tmp_path / "run"
    with RunLock(folder):
        old = time.time() - 100
        os.utime(folder / ".lock", (old, old))
        time.sleep(0.3)
        assert time.time() - (folder / ".lock").stat().st_mtime < 5  # the heartbeat renewed it
        assert not claim_lost(folder)
        (folder / ".lock").write_text("4242 another-host")  # taken over (this process stalled past its lease)
        time.sleep(0.3)
        assert claim_lost(folder)  # the run stops at its next checkpoint (engine.Run.checkpoint)
    assert (folder / ".lock").read_text() == "4242 another-host"  # not ours any more: left in place


def test_a_run_folder_whose_checkpoint_has_no_model_or_another_one_is_one_line(tmp_path):
    cfg = make_config("fashion_mnist")
    claim(tmp_path, cfg)
    for weights in ({}, {"fc.weight": torch.zeros(3)}):
        save_atomic(
            tmp_path / "best.ckpt",
            {"config": {"model": cfg.model}, **({"model": weights} if weights else {})},
        )
        with pytest.raises(
            ValueError,
            match="best.ckpt does not fit this run's resnet10s_cifar: it is from another configuration "
            r"\(or config.yaml was edited since\): restore it, or train the run again",
        ):
            trained_model(tmp_path)


def test_the_activation_and_squeeze_name_the_folder_where_they_are_not_the_paper_s():
    base = make_config("fashion_mnist", parse_set(["sr_stage=3"]))
    assert base.folder_name() == "resnet10s_cifar-sr3p4h8"  # as every earlier release named it
    other = make_config("fashion_mnist", parse_set(["sr_stage=3", "sr_act=gelu", "sr_squeeze_channels=2"]))
    assert other.folder_name() == "resnet10s_cifar-sr3p4h8-cs2-actgelu"


def test_a_run_folder_stands_where_its_path_does_and_names_each_file_once(tmp_path):
    cfg = make_config("fashion_mnist", {"sr_stage": 3})
    run = RunFolder.of(tmp_path, "demo", cfg)
    assert run.path == tmp_path / "demo" / "resnet10s_cifar-sr3p4h8" / "seed0" == Path(os.fspath(run))
    assert run / "last.ckpt" == run.path / "last.ckpt" and str(run) == str(run.path)
    assert not run.started() and not run.has_result() and run.diverged() is None
    assert run.progress() == f"{run.path}, before its first checkpoint"
    run.claim(run.check(cfg))
    assert run.started() and run.config() == cfg and RunFolder(run.path) == run
    run.mark_diverged("training diverged at epoch 3")
    assert run.diverged() == "training diverged at epoch 3" and not run.finished(cfg)
    run.claim(cfg)  # a run started again: the mark goes
    assert run.diverged() is None
    log = run.metrics_log(0, ("epoch", "loss"))
    log.append({"epoch": 1, "loss": 0.5})
    assert run.metrics() == [{"epoch": 1.0, "loss": 0.5}]
    run.write_result({"test_acc": 50.0})
    assert run.finished(cfg) and run.result() == {"test_acc": 50.0}


def test_a_changed_setting_names_a_folder_of_its_own_and_old_folders_keep_theirs(tmp_path, capsys):
    """--set lr=0.05 beside the recipe's run was refused ("holds a run of another configuration"):
    the folder is now named after what the --set changed, in the config's order; an old folder
    (named before that rule) holding this very configuration is still the run's."""
    from srblock.keys import recipe_values, set_changes

    recipe = recipe_values("fashion_mnist")
    cfg = make_config("fashion_mnist", {"lr": 0.05, "epochs": 3, "sr_stage": 3, "precision": "32-true"})
    changes = set_changes(cfg, ["lr", "epochs", "sr_stage", "precision"], recipe)
    assert changes == {"lr": 0.05, "epochs": 3}  # the SR block is named already; precision is how it runs
    assert cfg.folder_name(changes) == "resnet10s_cifar-sr3p4h8-lr0.05-epochs3"
    same = make_config("fashion_mnist", {"lr": recipe["lr"]})
    assert set_changes(same, ["lr"], recipe) == {} and same.folder_name({}) == "resnet10s_cifar"
    many = {
        "milestones": [1, 2],
        "momentum": 0.8,
        "nesterov": True,
        "weight_decay": 0.001,
        "label_smoothing": 0.1,
        "gamma": 0.5,
    }
    long = make_config("fashion_mnist", many)
    name = long.folder_name(set_changes(long, many, recipe))
    assert re.fullmatch(r"resnet10s_cifar-set[0-9a-f]{8}", name)  # too long to spell: a hash, stable
    assert name == long.folder_name(set_changes(long, list(reversed(many)), recipe))
    # an old folder of this very configuration, named before the rule, goes on under its name
    old = RunFolder(tmp_path / "fashion_mnist" / cfg.folder_name() / "seed0")
    old.claim(cfg)
    assert RunFolder.of(tmp_path, "fashion_mnist", cfg, changes) == old
    other = dataclasses.replace(cfg, lr=0.2)  # the old folder holds another configuration: a new one
    assert RunFolder.of(tmp_path, "fashion_mnist", other, {"lr": 0.2, "epochs": 3}).path.name == "seed0"
    assert RunFolder.of(tmp_path, "fashion_mnist", other, {"lr": 0.2, "epochs": 3}) != old


def test_epochs_are_numbered_from_1_and_an_earlier_releases_from_0_are_read_so(tmp_path):
    """The console said "epoch 1/1" where metrics.csv and result.json's best_epoch said 0: one
    numbering now, and the files of earlier runs read in it."""
    folder = RunFolder(tmp_path)
    (tmp_path / "metrics.csv").write_text("epoch,lr\n0,0.1\n1,0.1\n")  # an earlier release's
    (tmp_path / "result.json").write_text(json.dumps({"best_epoch": 1, "test_acc": 50.0}))
    assert [row["epoch"] for row in folder.metrics()] == [1.0, 2.0]
    assert folder.result()["best_epoch"] == 2
    MetricsLog(tmp_path / "metrics.csv", start=3, columns=("epoch", "lr")).append({"epoch": 3, "lr": 0.01})
    assert (tmp_path / "metrics.csv").read_text() == "epoch,lr\n1,0.1\n2,0.1\n3,0.01\n"  # resumed
    (tmp_path / "result.json").write_text(json.dumps({"best_epoch": 1, "epoch_base": 1}))  # today's
    assert folder.result()["best_epoch"] == 1
    (tmp_path / "metrics.csv").write_text("epoch,lr\n,0.1\n")  # a row without its epoch: no traceback
    assert folder.metrics() == [{"epoch": None, "lr": 0.1}]
