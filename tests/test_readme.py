"""The README's examples, and the guide's it links to (docs/guide.md), run as written; their
numbers are the code's."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE = README.parent / "docs" / "guide.md"  # the rest of the README: what a user reads next


def docs_text() -> str:
    return README.read_text() + "\n" + GUIDE.read_text()


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", docs_text(), flags=re.S)
    assert blocks, "the docs have no python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    assert "stages.2.sr" in capsys.readouterr().out


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = next(
        line.split("#")[0].strip() for line in text.splitlines() if "pytest" in line and "pip install" in line
    )
    assert test_command in ci


def test_the_models_table_counts_what_the_code_builds():
    import torch

    import srblock

    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([\d,]+)(?: \((\d+) classes\))? \| (\d+) x (\d+) x (\d+) \|$",
                      docs_text(), flags=re.M)  # fmt: skip
    zoo = {n for n in srblock.list_models() if not n.startswith("_")}  # (tests register "_" models)
    assert {name for name, *_ in rows} == zoo
    for name, count, classes, channels, height, width in rows:
        default = 1000 if name == "resnet50" else 100
        with torch.device("meta"):
            model = srblock.create_model(name, num_classes=int(classes or default), in_chans=int(channels))
        assert sum(p.numel() for p in model.parameters()) == int(count.replace(",", "")), name
        assert srblock.models.model_facts(name).input_size == (int(channels), int(height), int(width))


def runnable_blocks() -> list[tuple[str, str]]:
    """(language, code) of every README block marked `<!-- runnable... -->` on the line above it."""
    found = re.findall(r"<!-- runnable[^>]*-->\n```(\w+)\n(.*?)```", docs_text(), flags=re.S)
    assert len(found) >= 4, "the README's runnable blocks are gone"
    return found


def shell_commands(code: str) -> list[list[str]]:
    """The srblock commands of a bash block, continued lines joined and comments dropped."""
    import shlex

    joined = code.replace("\\\n", " ")
    return [
        shlex.split(line.split("#")[0])[1:] for line in joined.splitlines() if line.startswith("srblock ")
    ]


@pytest.mark.slow
def test_the_readme_blocks_marked_runnable_run_as_printed(tmp_path, monkeypatch, capsys):
    """On a tiny `clothes` folder (3 classes of real Fashion-MNIST pictures, those the README names
    among them), `srblock train` held to one epoch and two seeds; everything else as printed."""
    import shutil

    from .helpers import main_one_thread, trained_in, write_image_folder

    renamed: dict[str, str] = {}  # a folder the README prints -> the one its one-epoch run trains

    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / "clothes", classes=(5, 1, 0), per_class=(30, 4, 4))
    for name in re.findall(r"clothes/[\w/-]+?/\d+\.png", docs_text()):  # pictures the README names
        path = tmp_path / name
        if path.parent.is_dir() and not path.exists():
            shutil.copy(next(path.parent.glob("*.png")), path)
    for language, code in runnable_blocks():
        if language in ("py", "python"):
            exec(compile(code, str(README), "exec"), {})
            continue
        for args in shell_commands(code):
            tiny = ["--set", "epochs=1", "--set", "batch_size=16", "--seeds", "0", "1", "--quiet"]
            if args[0] == "train":  # held to one epoch, which names the folder: the README's paths follow
                printed, held = (trained_in(Path("runs"), args[1], words) for words in (args, args + tiny))
                renamed[str(printed.parent)] = str(held.parent)
                args = [*args, *tiny]
            else:
                args = [next((a.replace(x, y) for x, y in renamed.items() if x in a), a) for a in args]
            assert main_one_thread(*args) == 0, (args, capsys.readouterr().err[-2000:])
    out = capsys.readouterr().out
    assert "resnet10s_cifar-sr3p4h8" in out and "Sandal" in out and "test_acc" in out
