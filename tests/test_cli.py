import json
import subprocess
import sys

import pytest

from srblock.cli import build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console script's code path, in a fresh process (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "srblock", *args], capture_output=True, text=True, timeout=300)


def test_params_table_end_to_end():
    done = run_cli("params", "--table", "cifar100", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 40
    row = next(r for r in rows if r["name"] == "R18 + SE + SR")
    assert (row["table"], row["M"], row["P"], row["base_params"]) == ("II", 3, 2, 11_220_132)
    assert round(row["oh_pct"], 2) == row["paper_oh_pct"] == 1.09


def test_bad_model_name_is_one_line_exit_2():
    done = run_cli("params", "--model", "resnet19_cifar")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("srblock params: error: unknown model 'resnet19_cifar' (did you mean 'resnet18_cifar'?)")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["params", "--model", "resnet18_cifar", "--sr-stage", "9"], "stage 9 does not exist in ResNet: choose 1..4"),
        (["params", "--model", "resnet18_cifar", "--attn", "eca"], "argument --attn: invalid choice: 'eca'"),
        (["params", "--table", "svhn"], "argument --table: invalid choice: 'svhn'"),
        (["params"], "give --model NAME"),
        (["params", "--model", "resnet18_cifar", "--sr-stage", "3", "--input-size", "1", "32", "32"], "does not fit ResNet"),
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
    assert main(["params", "--model", "resnet18_cifar", "--attn", "se", "--sr-stage", "3", "--sr-blocks", "2"]) == 0
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
        assert "example" in text and "srblock " + (name or "") in text


def test_no_command_prints_help():
    done = run_cli()
    assert done.returncode == 2
    assert "examples:" in done.stdout


def test_train_help_lists_every_recipe_field(capsys):
    from srblock.train.config import KEYS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(key in text for key in KEYS) and "crop_size" in text and "gpu_decode" in text
