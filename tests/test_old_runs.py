"""A run folder written by srblock 283b03e (tests/fixtures/run_283b03e, made by
make_run_283b03e.py with that code on another machine): today's code reads it, predicts what that
code predicted (to a tolerance that holds across CPUs), resumes it to the same weights every time
on this machine (a resume in a fresh process and one in this process, compared bit for bit), to
about the test accuracy that code's resume reached, and every command reads the result.

No number here was recorded from one machine's float kernels and compared exactly: oneDNN picks
its blocking by CPU model, so another CPU (an AMD EPYC against the Intel Xeon that made the
fixture) rounds otherwise."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from srblock.analysis.analyze import load_run
from srblock.cli import main
from srblock.run_folder import RunFolder

from .helpers import argv, main_one_thread, srblock_cli, write_fashion_mnist

FIXTURE = Path(__file__).parent / "fixtures" / "run_283b03e"
RUN = Path("fashion_mnist") / "resnet10s_cifar-sr3p2h8" / "seed0"
sys.path.insert(0, str(FIXTURE.parent))

from make_run_283b03e import ARGS  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture()
def old_run(tmp_path: Path) -> tuple[Path, Path]:
    """(the copied runs folder, the data the run was trained on)."""
    shutil.copytree(FIXTURE, tmp_path / "runs")
    return tmp_path / "runs", write_fashion_mnist(tmp_path / "data")


def logits(run) -> torch.Tensor:
    """What make_run_283b03e.py computed with 283b03e's code, computed by today's."""
    images = run.splits["test"].images[:16].float().div(255)
    mean = torch.tensor(run.info.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.info.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return run.model.eval()((images - mean) / std)


def test_an_old_run_predicts_as_before_resumes_to_the_same_weights_and_every_command_reads_it(
    old_run, tmp_path
):
    runs, data = old_run
    folder = runs / RUN
    before = torch.load(FIXTURE / "logits.pt", weights_only=True)["logits"]
    # one forward of the old best.ckpt: across CPUs its rounding differs in the last digits only
    torch.testing.assert_close(logits(load_run(folder, data)), before, rtol=1e-4, atol=1e-4)

    twin = tmp_path / "twin"  # a second copy, resumed in this process: the same weights, bit for bit
    shutil.copytree(FIXTURE, twin)
    done = srblock_cli(*ARGS, "--data", str(data), "--out", str(runs), "--resume")
    assert done.returncode == 0, done.stderr
    with pytest.warns(FutureWarning, match="sr_blocks is now called sr_memory_blocks"):  # 283b03e's words
        assert main_one_thread(*ARGS, "--data", str(data), "--out", str(twin), "--resume") == 0
    resumed, again = (torch.load(f / RUN / "last.ckpt", weights_only=True) for f in (runs, twin))
    assert resumed["epoch"] == again["epoch"] == 2
    # its metrics.csv numbered epochs from 0; resumed, the table numbers them from 1, as the console
    assert RunFolder(FIXTURE / RUN).metrics()[0]["epoch"] == 1.0
    assert (folder / "metrics.csv").read_text().splitlines()[1].startswith("1,")
    assert [row["epoch"] for row in RunFolder(folder).metrics()] == [1.0, 2.0]
    assert all(torch.equal(resumed["model"][k], again["model"][k]) for k in resumed["model"])
    recorded = json.loads((FIXTURE / "resumed.json").read_text())
    result = json.loads((folder / "result.json").read_text())
    # the same run as 283b03e's resume on its machine, not the same last digits: 10 points on 50 images
    assert abs(result["test_acc"] - recorded["test_acc"]) <= 10.0

    assert main(["table", str(runs), "--format", "json"]) == 0
    assert main(["analyze", str(folder), "--data", str(data), "--per-class", "2"]) == 0
    assert (folder / "analysis" / "ablation.json").is_file()
    images = tmp_path / "images"
    images.mkdir()
    from torchvision.io import write_png

    for i in range(3):
        write_png(torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8), str(images / f"{i}.png"))
    assert main(["predict", str(folder), str(images), "--csv", str(tmp_path / "p.csv")]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 3
    assert main(argv("export {run} --onnx {file}", run=folder, file=tmp_path / "old.onnx")) == 0
    assert (tmp_path / "old.onnx").stat().st_size > 0
