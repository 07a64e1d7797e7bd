"""Every `srblock` command end to end: help and examples, one-line errors, params, recipes, sweep, demo."""

import json
import os
import sys
import tempfile

import pytest
import torch

from srblock.atomic_files import write_atomic
from srblock.cli import build_parser, main, os_error

from .helpers import argv, write_fashion_mnist
from .helpers import srblock_cli as run_cli

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")


@pytest.mark.slow
def test_params_table_end_to_end(capsys):
    assert main(["params", "--table", "cifar100", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 40
    row = next(r for r in rows if r["name"] == "R18 + SE + SR")
    assert (row["table"], row["M"], row["P"], row["base_params"]) == ("II", 3, 2, 11_220_132)
    assert round(row["oh_pct"], 2) == row["paper_oh_pct"] == 1.09


def test_bad_model_name_is_one_line_exit_2(capsys):
    assert main(["params", "--model", "resnet19_cifar"]) == 2
    done = capsys.readouterr()
    assert done.out == ""
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith(
        "srblock params: error: unknown model 'resnet19_cifar' (did you mean 'resnet18_cifar'?)"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["params", "--model", "resnet18_cifar", "--sr-stage", "9"],
            "stage 9 does not exist in ResNet: choose 1..4",
        ),
        (["params", "--model", "resnet18_cifar", "--attn", "eca"], "argument --attn: invalid choice: 'eca'"),
        (["params", "--table", "svhn"], "argument --table: invalid choice: 'svhn'"),
        (["params"], "give --model NAME"),
        (
            ["params", "--model", "resnet18_cifar", "--in-chans", "3", "--input-size", "1", "32", "32"],
            "--in-chans 3 and --input-size 1 32 32 disagree: give one of them",
        ),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        code = main(args)
        raise SystemExit(code)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_params_one_model_markdown(capsys):
    assert (
        main(
            [
                "params",
                "--model",
                "resnet18_cifar",
                "--attn",
                "se",
                "--sr-stage",
                "3",
                "--sr-memory-blocks",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| name")
    assert "resnet18_cifar + SE + SR" in out[2] and "layer3 (256x8x8, P=2)" in out[2] and "1.09" in out[2]


def test_params_csv_by_stage_name(capsys):
    assert main(["params", "--model", "vgg16_bn_cifar", "--sr-stage", "features.1", "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("name,sr_at,base_params")
    assert "features.1 (128x8x8, P=4)" in row


def test_every_command_explains_itself_with_an_example(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert "params" in commands
    for name in [None, *commands]:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"] if name else ["--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        examples = text.split("examples:", 1)[1].splitlines() if "examples:" in text else []
        # an example line that runs this very command (the usage line names it anyway, so look past it)
        assert any(line.strip().startswith(f"srblock {name or ''}".strip()) for line in examples), name


@pytest.mark.slow
def test_no_command_prints_help():
    done = run_cli()
    assert done.returncode == 2
    assert "examples:" in done.stdout


def test_train_help_lists_every_recipe_field_by_task(capsys):
    from srblock.keys import KEYS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(key in text for key in KEYS)
    assert (
        "segmentation: iterations, eval_interval" in text
        and "classification of image files: image_size, gpu_decode" in text
    )


def test_recipes_command(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert (
        lines["cifar100"] == "recipe"
        and lines["cifar100-table1"] == "sweep"
        and lines["fashion_mnist"] == "recipe"
    )


@pytest.mark.slow
def test_sweep_skips_finished_runs(cifar, tmp_path, capsys):
    sweep = tmp_path / "mini-sweep.yaml"
    sweep.write_text(
        "description: two rows\nrecipe: cifar10\n"
        "set: {model: resnet10s_cifar, epochs: 1, batch_size: 32}\nseeds: [0]\n"
        "runs:\n  - {name: R10s}\n"
        "  - {name: R10s + SR, sr_stage: 3, sr_memory_blocks: 2, paper: {acc: 50.0, std: 1.0}}\n"
    )
    args = ["sweep", str(sweep), "--data", str(cifar), "--out", str(tmp_path / "runs"), "--quiet"]
    assert main(args) == 0
    assert "2 runs: 0 were finished already, 2 trained now" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 runs: 2 were finished already, 0 trained now" in capsys.readouterr().out
    # another setting is another configuration: its folders are named after it, beside the first
    assert main([*args, "--set", "lr=0.2"]) == 0
    assert "2 runs: 0 were finished already, 2 trained now" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "runs" / "mini-sweep").iterdir())
    assert names == [f"resnet10s_cifar{sr}{lr}" for sr in ("", "-sr3p2h8") for lr in ("", "-lr0.2")]
    assert main(["table", str(tmp_path / "runs"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == ["R10s", "R10s (lr=0.2)", "R10s + SR", "R10s + SR (lr=0.2)"]
    sr = next(r for r in rows if r["name"] == "R10s + SR")
    assert sr["M"] == 3 and sr["P"] == 2 and sr["paper_acc_mean"] == 50.0 and sr["seeds"] == 1


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    root = write_fashion_mnist(tmp_path / "fm", train=300, test=60)
    assert main(["demo", "--tiny", "--data", str(root), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "resnet10s_cifar + SR" in out and "sr_oh_pct" in out
    assert "test_acc_bypassed" in out and "sr_mem_ratio" in out  # what the block does
    assert (tmp_path / "runs" / "demo-tiny" / "resnet10s_cifar-sr3p4h8" / "seed0" / "result.json").exists()


@pytest.mark.slow
def test_segmentation_demo_tiny(tmp_path, capsys):
    data = write_fashion_mnist(tmp_path / "fashion", train=60, test=20)
    assert (
        main(
            argv("demo --task seg --tiny --data {data} --out {out} --quiet", data=data, out=tmp_path / "runs")
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "fcn_resnet10s + SR" in out and "test_miou" in out
    results = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "demo-seg-tiny").rglob("result.json")]
    assert len(results) == 2 and sorted(r["sr_params"] > 0 for r in results) == [False, True]


def test_runs_of_different_precisions_are_not_trained_under_one(tmp_path):
    from srblock.keys import make_config
    from srblock.train.jobs import shared_precision

    cfg = make_config("fashion_mnist")
    assert shared_precision([cfg, cfg]) == "auto"
    with pytest.raises(ValueError, match=r"different precisions \(32-true, auto\): resume them together"):
        shared_precision([cfg, make_config("fashion_mnist", {"precision": "32-true"})])


@pytest.mark.parametrize(
    "args, message",
    [
        (["analyze", "x", "--per-class", "0"], "argument --per-class: must be at least 1, got 0"),
        (["report", "x", "--per-class", "-1"], "argument --per-class: must be at least 1, got -1"),
        (
            ["export", "--model", "resnet10s_cifar", "--num-classes", "-3", "--onnx", "x"],
            "--num-classes: must be at least 1",
        ),
        (
            ["params", "--model", "resnet18_cifar", "--num-classes", "0"],
            "argument --num-classes: must be at least 1",
        ),
        (
            ["bench", "--model", "resnet10s_cifar", "--sr-stage", "3", "--batch-size", "0"],
            "argument --batch-size: must be at least 1",
        ),
        (["bench", "--paper", "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
        (["bench", "--paper", "--device", "tpu"], "argument --device: takes cpu or cuda (cuda:N), got 'tpu'"),
        (["train", "fashion_mnist", "--seeds", "-1"], "argument --seeds: must be at least 0, got -1"),
        (
            ["train", "fashion_mnist", "--devices", "abc"],
            "--devices takes a positive number or 'auto', got 'abc'",
        ),
    ],
)
def test_bad_numbers_and_devices_on_the_command_line_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no GPU")
def test_a_gpu_asked_for_where_there_is_none(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--paper", "--device", "cuda"])
    assert "argument --device: cuda: no CUDA GPU here; use --device cpu" in capsys.readouterr().err
    for command in (["analyze", "runs/x/seed0"], ["report", "runs/x"]):
        with pytest.raises(SystemExit):
            main([*command, "--device", "cuda:1"])
        assert "argument --device: cuda:1: no CUDA GPU here; use --device cpu" in capsys.readouterr().err
    assert main(["train", "fashion_mnist", "--accelerator", "cuda", "--set", "limit_train=10"]) == 2
    assert "--accelerator cuda: no CUDA GPU here; use --accelerator cpu (or auto)" in capsys.readouterr().err


def test_python_m_srblock_is_the_command(capsys, monkeypatch):
    import runpy

    monkeypatch.setattr(sys, "argv", ["srblock", "recipes"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("srblock", run_name="__main__")
    assert done.value.code == 0 and "fashion_mnist" in capsys.readouterr().out


def test_ctrl_c_while_the_command_imports_torch_is_one_line():
    """The command line answers without torch; a command imports it as it runs, under the
    command's own Ctrl-C handling: one line, no traceback."""
    import shutil
    import signal
    import subprocess
    import time
    from pathlib import Path

    script = shutil.which("srblock")  # the console script, as a user types it
    for command in ([script] if script else []) + [[sys.executable, "-m", "srblock"]]:
        command = [command] if isinstance(command, str) else command
        process = subprocess.Popen(
            [*command, "params", "--model", "resnet10s_cifar"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        maps = Path(f"/proc/{process.pid}/maps")
        deadline = time.time() + 60
        while process.poll() is None and "libtorch" not in maps.read_text() and time.time() < deadline:
            time.sleep(0.005)  # until torch's library is loading: srblock's own code has started
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert err == "srblock params: interrupted; continue with: the same command\n"


def test_the_systems_refusals_name_the_path_given_and_the_fix(tmp_path, capsys, monkeypatch):
    afile, adir = tmp_path / "afile", tmp_path / "adir"
    afile.write_text("")
    adir.mkdir()
    for action, path, message in (
        (lambda: os.replace(afile, adir), adir, "is a folder: give a file path (e.g. FOLDER/name)"),
        (lambda: os.makedirs(afile), afile, "exists and is not a folder: give a new folder path"),
        (lambda: open(afile / "x", "w"), afile / "x", "goes through a file as if it were a folder"),
    ):
        with pytest.raises(OSError) as err:
            action()
        assert os_error(err.value).startswith(f"{path} {message}")
    with pytest.raises(OSError) as err:
        os.mkdir(adir)
    assert os_error(err.value) == f"{adir} already exists: give a new path"

    def refused(*args, **kwargs):  # what mkstemp raises in a folder this user may not write in
        raise PermissionError(13, "Permission denied", str(adir / ".report.html.1@host.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as err:
        write_atomic(adir / "report.html", lambda f: f.write(b"x"))
    assert os_error(err.value).startswith(f"{adir / 'report.html'} cannot be written or read")
    assert main(["export", "--model", "resnet10s_cifar", "--onnx", str(afile / "m.onnx")]) == 2
    expected = f"srblock export: error: {afile} exists and is not a folder: give a new folder path"
    assert capsys.readouterr().err.strip() == expected


def test_two_sweep_rows_of_one_configuration_are_refused(tmp_path, capsys):
    """They trained one folder: "2 trained now" for one run, and the first row vanished from the table."""
    sweep = tmp_path / "twice.yaml"
    sweep.write_text(
        "recipe: fashion_mnist\nseeds: [0]\n"
        "runs:\n  - {name: first, sr_stage: 3}\n  - {name: again, sr_stage: 3, sr_hidden: 8}\n"
    )
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "rows 'first' and 'again' are one configuration (both would train " in err and "\n" not in err
    assert not (tmp_path / "runs").exists()
    sweep.write_text("recipe: fashion_mnist\nseeds: [0]\nruns:\n  - {name: copy}\n  - {name: copy}\n")
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "runs")]) == 2  # pasted twice, one name
    assert "rows 'copy' and 'copy' are one configuration" in capsys.readouterr().err
