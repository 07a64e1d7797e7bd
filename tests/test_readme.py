"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
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
                      README.read_text(), flags=re.M)  # fmt: skip
    assert {name for name, *_ in rows} == set(srblock.list_models())
    for name, count, classes, channels, height, width in rows:
        default = 1000 if name == "resnet50" else 100
        with torch.device("meta"):
            model = srblock.create_model(name, num_classes=int(classes or default), in_chans=int(channels))
        assert sum(p.numel() for p in model.parameters()) == int(count.replace(",", "")), name
        assert srblock.registry.model_facts(name).input_size == (int(channels), int(height), int(width))
