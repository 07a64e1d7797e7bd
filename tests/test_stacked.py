"""Seeds stacked into one network (srblock.stack, train/stacked.py): each member trains as it would
alone (float64 shows it to rounding), a killed stack resumes exactly, a diverging member leaves
the others unharmed, and the runs' folders are those of runs trained alone."""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.fabric import Fabric

from srblock.checkpoint import load_checkpoint
from srblock.cli import main
from srblock.config import with_seeds
from srblock.factory import create_model
from srblock.keys import make_config
from srblock.run_folder import DIVERGED_FILE, RunFolder
from srblock.stack import StackedModel, member_state, stack_state, stacked_optimizer, write_members
from srblock.train import stacked, train_classifier, train_stacked
from srblock.train.jobs import Job, stack_groups

from .helpers import KILLER, TINY, cli_env, main_one_thread, trained_in

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")
TINY_KEYS = {"model": "resnet10s_cifar", "sr_stage": 3, "batch_size": 32, "eval_batch_size": 64}


def members(seeds=(0, 1), dtype=torch.float64) -> list[torch.nn.Module]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(create_model("resnet10s_cifar", num_classes=10, sr_stage=3).to(dtype))
    return models


def test_a_stack_computes_what_its_members_compute_and_gives_their_weights_back():
    models = members()
    for model in models:  # a memory that is not zero, so the SR block's recall counts
        for name, param in model.named_parameters():
            if name.endswith("memory"):
                torch.nn.init.normal_(param)
    stack = StackedModel(models)
    images = torch.randn(2, 4, 3, 32, 32, dtype=torch.float64)
    stack.eval()
    out = stack(images)
    for i, model in enumerate(models):
        model.eval()
        torch.testing.assert_close(out[i], model(images[i]), rtol=1e-12, atol=1e-12)

    with torch.no_grad():
        stack.stacked("conv1.weight")[1].add_(1.0)
    before = models[1].conv1.weight.clone()
    write_members(stack, models)
    torch.testing.assert_close(models[1].conv1.weight, before + 1.0)
    assert "members=2" in repr(stack)
    with pytest.raises(ValueError, match="one architecture"):
        StackedModel([models[0], create_model("resnet18_cifar", num_classes=10).double()])


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_an_optimiser_over_a_stack_updates_each_member_as_alone(kind):
    models = members()
    make = {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.05),
    }[kind]
    alone = [make(m.parameters()) for m in models]
    stack = StackedModel(models)
    optimizer = stacked_optimizer(stack, models[0], alone[0])
    assert type(optimizer) is type(alone[0])
    images = torch.randn(2, 4, 3, 32, 32, dtype=torch.float64)
    labels = torch.randint(0, 10, (2, 4))
    for _ in range(2):
        optimizer.zero_grad()
        stacked.member_losses(stack(images), labels).sum().backward()
        optimizer.step()
        for i, model in enumerate(models):
            alone[i].zero_grad()
            torch.nn.functional.cross_entropy(model(images[i]), labels[i]).backward()
            alone[i].step()
    for i, model in enumerate(models):
        for name, param in model.named_parameters():
            torch.testing.assert_close(stack.stacked(name)[i], param, rtol=1e-10, atol=1e-12)
        state, own = member_state(optimizer.state_dict(), i), alone[i].state_dict()
        for index, entry in own["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(state["state"][index][key], value, rtol=1e-10, atol=1e-12)
        assert state["param_groups"] == own["param_groups"]
    restacked = stack_state([member_state(optimizer.state_dict(), i) for i in range(2)])
    for index, entry in optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            assert torch.equal(restacked["state"][index][key], value)


@pytest.mark.slow
def test_stacked_seeds_train_as_they_would_alone_to_float64_rounding(cifar, tmp_path):
    keys = {**TINY_KEYS, "epochs": 2, "limit_train": 192, "data_dir": str(cifar)}
    cfgs = with_seeds(make_config("cifar10", keys), [0, 1])
    fabric = Fabric(accelerator="cpu", devices=1, precision="64-true")
    results, failed = train_stacked(
        fabric, [(c, tmp_path / f"stacked{c.seed}", None) for c in cfgs], quiet=True
    )
    assert failed == {} and len(results) == 2
    for cfg in cfgs:
        alone, together = tmp_path / f"alone{cfg.seed}", tmp_path / f"stacked{cfg.seed}"
        result = train_classifier(fabric, cfg, alone, quiet=True)
        a, b = load_checkpoint(alone / "last.ckpt"), load_checkpoint(together / "last.ckpt")
        assert a["epoch"] == b["epoch"] == 2 and a["best_epoch"] == b["best_epoch"]
        for key, value in a["model"].items():
            torch.testing.assert_close(b["model"][key], value, rtol=1e-9, atol=1e-11)
        momentum = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
        assert momentum and all(
            torch.allclose(s["momentum_buffer"], m, rtol=1e-9, atol=1e-11)
            for s, m in zip(b["optimizer"]["state"].values(), momentum, strict=True)
        )
        assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 2
        assert (alone / "config.yaml").read_text() == (together / "config.yaml").read_text()
        rows_a, rows_b = ((f / "metrics.csv").read_text().splitlines() for f in (alone, together))
        assert rows_a[0] == rows_b[0] and len(rows_a) == len(rows_b) == 3
        for row_a, row_b in zip(rows_a[1:], rows_b[1:], strict=True):  # every column but the seconds
            values_a, values_b = row_a.split(","), row_b.split(",")
            for column, x, y in zip(rows_a[0].split(","), values_a, values_b, strict=True):
                if column != "seconds" and x:
                    assert float(x) == pytest.approx(float(y), rel=1e-6), column  # metrics: float32
        stacked_result = RunFolder(together).result()
        assert stacked_result["test_acc"] == pytest.approx(result["test_acc"])
        assert stacked_result["stacked"] == 2 and "stacked" not in result


@pytest.fixture
def poisoned(monkeypatch):
    """Seed 1's first conv weights become NaN when the stack is first built: it diverges in epoch 1."""
    stack_runs, done = stacked.stack_runs, []

    def poison_seed_1(fabric, runs, schedule):
        stack = stack_runs(fabric, runs, schedule)
        if not done:
            with torch.no_grad():
                stack.model.stacked("conv1.weight")[1].fill_(float("nan"))
            done.append(True)
        return stack

    monkeypatch.setattr(stacked, "stack_runs", poison_seed_1)


@pytest.mark.slow
def test_a_diverging_member_leaves_the_others_as_they_would_be_alone(cifar, tmp_path, poisoned):
    cfgs = with_seeds(make_config("cifar10", {**TINY_KEYS, "epochs": 2, "data_dir": str(cifar)}), [0, 1])
    fabric = Fabric(accelerator="cpu", devices=1, precision="64-true")
    jobs = [(c, tmp_path / f"stacked{c.seed}", None) for c in cfgs]
    results, failed = train_stacked(fabric, jobs, quiet=True)
    assert list(results) == [tmp_path / "stacked0"] and list(failed) == [tmp_path / "stacked1"]
    assert (
        "training diverged" in failed[tmp_path / "stacked1"] and "at epoch 1" in failed[tmp_path / "stacked1"]
    )
    assert not (tmp_path / "stacked1" / "result.json").exists()
    assert not (tmp_path / "stacked1" / "last.ckpt").exists()  # it never finished an epoch
    train_classifier(fabric, cfgs[0], tmp_path / "alone0", quiet=True)
    a, b = (load_checkpoint(tmp_path / f / "last.ckpt")["model"] for f in ("alone0", "stacked0"))
    for key, value in a.items():  # the survivor, a stack of one from epoch 2, as if it had been alone
        torch.testing.assert_close(b[key], value, rtol=1e-9, atol=1e-11)


def test_the_command_finishes_the_others_then_names_the_diverged_run(cifar, tmp_path, poisoned, capsys):
    common = ["train", "cifar10", "--data", str(cifar), "--set", "epochs=1", "--set", "sr_stage=3", *TINY]
    configuration = trained_in(Path(), "cifar10", common).parent  # cifar10/<its name>
    assert main_one_thread(*common, "--seeds", "0", "1", "2", "--stack", "3", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0] and "seed1" in err[0] and "seed0" not in err[0]
    assert not (tmp_path / configuration / "seed1" / "result.json").exists()
    assert [RunFolder(tmp_path / configuration / f"seed{s}").result()["epochs"] for s in (0, 2)] == [1, 1]
    # the folder says why; the table averages the others and says which it left out; resume skips it
    why = (tmp_path / configuration / "seed1" / DIVERGED_FILE).read_text().strip()
    assert (
        why == err[0].removeprefix("srblock train: error: ")
        and "train again with a smaller lr (now 0.1, e.g. --set lr=0.01)" in why
    )
    assert main(["table", str(tmp_path), "--format", "csv"]) == 0
    out, table_err = capsys.readouterr()
    [row] = csv.DictReader(io.StringIO(out))
    assert row["seeds"] == "2"  # the two finished seeds
    assert table_err == f"srblock table: left out {tmp_path / configuration / 'seed1'}: {why}\n"
    skipped = f"skipped {tmp_path / configuration / 'seed1'}, stopped before: training diverged"
    assert main_one_thread("train", "cifar10", "--out", str(tmp_path), "--resume") == 0
    assert skipped in capsys.readouterr().err
    assert main_one_thread(*common, "--seeds", "0", "1", "2", "--out", str(tmp_path), "--resume") == 0
    assert skipped in capsys.readouterr().err  # the same command with --resume: skipped too


def test_a_member_whose_validation_loss_is_not_a_number_stops_before_it_checkpoints(
    cifar, tmp_path, monkeypatch
):
    evaluate = stacked.evaluate_stacked

    def nan_for_the_second(net, batches):
        vals = evaluate(net, batches)
        return [vals[0], (float("nan"), vals[1][1]), *vals[2:]] if len(vals) > 1 else vals

    monkeypatch.setattr(stacked, "evaluate_stacked", nan_for_the_second)
    cfgs = with_seeds(make_config("cifar10", {**TINY_KEYS, "epochs": 2, "data_dir": str(cifar)}), [0, 1, 2])
    fabric = Fabric(accelerator="cpu", devices=1, precision="32-true")
    jobs = [(c, tmp_path / f"seed{c.seed}", None) for c in cfgs]
    results, failed = train_stacked(fabric, jobs, quiet=True)
    # seed 1 stops at epoch 1; seed 2 takes its place in the pair, then is second in epoch 2 and stops
    assert list(results) == [tmp_path / "seed0"] and list(failed) == [tmp_path / "seed1", tmp_path / "seed2"]
    assert "at epoch 1: the validation loss is nan" in failed[tmp_path / "seed1"]
    assert "at epoch 2: the validation loss is nan" in failed[tmp_path / "seed2"]
    assert not (tmp_path / "seed1" / "last.ckpt").exists() and (tmp_path / "seed2" / "last.ckpt").exists()
    assert RunFolder(tmp_path / "seed1").diverged() and RunFolder(tmp_path / "seed0").result()["epochs"] == 2


@pytest.mark.slow
def test_a_stack_killed_inside_an_epoch_resumes_to_the_same_weights(cifar, tmp_path):
    common = ["train", "cifar10", "--data", str(cifar), "--set", "epochs=2", "--set", "sr_stage=3", *TINY]
    common += ["--seeds", "0", "1", "--stack", "2"]
    configuration = trained_in(Path(), "cifar10", common).parent  # cifar10/<its name>
    assert main_one_thread(*common, "--out", str(tmp_path / "straight")) == 0
    marker = tmp_path / "killed_at"
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *common, "--out", str(tmp_path / "killed")],
        env=cli_env(KILL_AT="13", MARKER=str(marker)),  # 9 steps an epoch: 4 into the second
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL and marker.read_text() == "13"
    assert main_one_thread(*common, "--out", str(tmp_path / "killed"), "--resume") == 0
    for seed in (0, 1):
        a = load_checkpoint(tmp_path / "killed" / configuration / f"seed{seed}" / "last.ckpt")
        b = load_checkpoint(tmp_path / "straight" / configuration / f"seed{seed}" / "last.ckpt")
        assert a["epoch"] == b["epoch"] == 2
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        result = RunFolder(tmp_path / "killed" / configuration / f"seed{seed}").result()
        straight = RunFolder(tmp_path / "straight" / configuration / f"seed{seed}").result()
        assert result["test_acc"] == straight["test_acc"]


def test_seeds_of_one_configuration_are_grouped_and_what_cannot_stack_is_said(tmp_path):
    cifar = make_config("cifar10", TINY_KEYS)
    other = make_config("cifar10", {**TINY_KEYS, "sr_memory_blocks": 2})
    jobs = [Job(c, tmp_path / "a" / f"seed{c.seed}") for c in with_seeds(cifar, [0, 1, 2])]
    jobs += [Job(c, tmp_path / "b" / f"seed{c.seed}") for c in with_seeds(other, [0, 1])]
    todo = list(enumerate(jobs))
    sizes = [[i for i, _ in g] for g in stack_groups(todo, 2, "cpu", 1)]
    assert sizes == [[0, 1], [3, 4], [2]]  # breadth first: the first stack of each configuration first
    assert [len(g) for g in stack_groups(todo, "auto", "cpu", 1)] == [1] * 5
    assert [len(g) for g in stack_groups(todo, "auto", "cuda", 1)] == [3, 2]
    segment = make_config("fashion_mnist_seg", {})
    with pytest.raises(ValueError, match="--stack 2: stacked seeds train classification runs"):
        stack_groups([(0, Job(segment, tmp_path / "s"))], 2, "cpu", 1)
    with pytest.raises(ValueError, match="one device"):
        stack_groups(todo, 2, "cuda", 2)
    assert [len(g) for g in stack_groups([(0, Job(segment, tmp_path / "s"))], "auto", "cuda", 1)] == [1]
    # what a stack would compute differently from the seeds alone, or cannot compute: refused, or alone
    loader = make_config("cifar10", {**TINY_KEYS, "loader": "dataloader"})
    dropblock = make_config("cifar10", {**TINY_KEYS, "reg": "db"})
    for cfg, message in ((loader, "loader=dataloader's batches are not each seed's own in a stack"),
                         (dropblock, "DropBlock draws its masks in place")):  # fmt: skip
        pair = [(k, Job(c, tmp_path / "x" / f"seed{k}")) for k, c in enumerate(with_seeds(cfg, [0, 1]))]
        with pytest.raises(ValueError, match=f"--stack 2: {message}"):
            stack_groups(pair, 2, "cpu", 1)
        assert [len(g) for g in stack_groups(pair, "auto", "cuda", 1)] == [1, 1]


def test_the_line_that_continues_an_interrupted_run_repeats_how_it_ran():
    """After Ctrl-C the line dropped --stack 2 (the seeds went on alone, with other numbers), and the
    seeds and keys (seeds not started yet were never trained)."""
    from srblock.cli import _again, build_parser

    words = [
        "train",
        "cifar10",
        "--out",
        "my runs",
        "--seeds",
        "0",
        "1",
        "2",
        "--stack",
        "2",
        "--set",
        "epochs=3",
    ]
    args = build_parser().parse_args(words)
    assert _again(args, words) == (
        "srblock train cifar10 --out 'my runs' --seeds 0 1 2 --stack 2 --set epochs=3 --resume"
    )
    args = build_parser().parse_args([*words, "--resume"])
    assert _again(args, [*words, "--resume"]).count("--resume") == 1


def test_stack_flags_are_checked(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "cifar10", "--stack", "two"])
    assert "--stack: takes a whole number, got 'two' (or auto)" in capsys.readouterr().err
    code = main(["train", "fashion_mnist", "--stack", "2", "--parallel", "2", "--out", str(tmp_path)])
    assert code == 2 and "choose one" in capsys.readouterr().err


def test_ctrl_c_in_a_stack_says_where_each_of_its_seeds_stands(tmp_path):
    """It named the first seed's folder only."""
    from srblock.run_folder import Interrupted

    folders = [tmp_path / "seed0", tmp_path / "seed1"]
    for k, folder in enumerate(folders):
        folder.mkdir()
        torch.save({"epoch": k + 1}, folder / "last.ckpt")
    assert Interrupted(*folders).where() == (
        f"{folders[0]}, whose last.ckpt is after epoch 1 and {folders[1]}, whose last.ckpt is after epoch 2"
    )


def test_a_stacked_seed_is_stopped_for_the_losses_a_seed_alone_is_and_no_other(tmp_path):
    """The stack's rule is the run's: a large validation loss is recorded, a non-finite one (or a
    training loss past the limit) stops that seed alone."""
    import types

    from srblock.train.engine import Run

    rank0 = types.SimpleNamespace(global_rank=0)
    cfg = make_config("cifar10", TINY_KEYS)
    runs = [Run(rank0, cfg, tmp_path / f"seed{k}", None, None, None, None, None, "epoch") for k in range(3)]
    shown = types.SimpleNamespace(note=lambda *a, **k: None)
    stack, failed = types.SimpleNamespace(runs=runs), {}
    assert stacked.stopped(stack, [6.13e6, 2.3, float("nan")], 0, "validation loss", failed, shown) == [0, 1]
    assert stacked.stopped(stack, [2.3, 1.3e27, 2.2], 0, "training loss", failed, shown) == [0, 2]
    assert sorted(failed) == [tmp_path / "seed1", tmp_path / "seed2"]
