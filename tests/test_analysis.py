"""`srblock analyze` and `srblock report` on a tiny run trained here."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from srblock import add_sr, remove_sr, sr_blocks
from srblock.analysis import load_run, pick_classes
from srblock.analysis.analyze import ablation, accuracy, analyze, image_batches
from srblock.checkpoint import save_atomic
from srblock.cli import main
from srblock.spec import SRSpec

from .helpers import argv, fill_memory, write_cifar10

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")
TINY = ["--set", "model=resnet10s_cifar", "--set", "batch_size=32", "--set", "epochs=1", "--quiet"]
SET = "-batch_size32-epochs1"  # what TINY changes of the recipe names the folders


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analysis")
    data = write_cifar10(root / "data", per_batch=200, test=80)
    assert (
        main(
            argv("train cifar10 --data {data} --out {out} --set sr_stage=3", data=data, out=root / "runs")
            + TINY
        )
        == 0
    )
    assert main(["train", "cifar10", "--data", str(data), "--out", str(root / "runs"), *TINY]) == 0
    sr = root / "runs" / "cifar10" / f"resnet10s_cifar-sr3p4h8{SET}" / "seed0"
    # give the memory content, as a longer training would: the analysis must see it
    ckpt = torch.load(sr / "best.ckpt", weights_only=True)
    torch.manual_seed(0)
    ckpt["model"]["layer3.sr.memory"] = torch.randn_like(ckpt["model"]["layer3.sr.memory"]) * 0.5
    save_atomic(sr / "best.ckpt", {k: v for k, v in ckpt.items() if k not in ("format", "checksum")})
    return {"data": data, "sr": sr, "plain": root / "runs" / "cifar10" / f"resnet10s_cifar{SET}" / "seed0"}


@pytest.mark.slow
def test_analyze_writes_every_file_and_the_numbers_agree(runs, capsys):
    # no --data: the run folder remembers where its data lay
    assert main(["analyze", str(runs["sr"]), "--per-class", "4", "--classes", "class1", "3"]) == 0
    out = runs["sr"] / "analysis"
    expected = argv(
        "weights.json features.json memory.json ablation.json weights_layer3.png features_layer3.png "
        "memory_layer3.png separation_layer3.png ablation.png"
    )
    printed = capsys.readouterr().out.splitlines()
    for name in expected:
        assert (out / name).stat().st_size > 0, name
        assert str(out / name) in printed
    weights = json.loads((out / "weights.json").read_text())
    assert weights["classes"] == ["class1", "class3"] and weights["split"] == "val"
    block = weights["blocks"]["layer3.sr"]
    low, high = block["weight_sums"]
    assert low == pytest.approx(1.0, abs=1e-5) and high == pytest.approx(1.0, abs=1e-5)  # per image

    # the same numbers computed directly, on the same images
    run = load_run(runs["sr"])
    val = run.splits["val"]
    images = val.images[(val.labels == 3).nonzero().flatten()[:4]]
    sr = sr_blocks(run.model)[0][1]
    seen = {}
    sr.register_forward_hook(lambda m, a, o: seen.update(x=a[0], y=o, w=m.memory_weights(a[0])))
    with torch.no_grad():
        mean = torch.tensor(run.info.mean).view(1, -1, 1, 1) * 255
        std = torch.tensor(run.info.std).view(1, -1, 1, 1) * 255
        run.model((images.float() - mean) / std)
    stats = block["per_class"]["class3"]
    assert stats["images"] == len(images)
    torch.testing.assert_close(torch.tensor(stats["weight_mean"]), seen["w"].mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(stats["weight_std"]), seen["w"].std(0), atol=1e-5, rtol=0)
    features = json.loads((out / "features.json").read_text())["blocks"]["layer3.sr"]["per_class"]["class3"]
    torch.testing.assert_close(
        torch.tensor(features["pre_mean"]), seen["x"].mean((0, 2, 3)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        torch.tensor(features["post_mean"]), seen["y"].mean((0, 2, 3)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        torch.tensor(features["delta_mean"]), (seen["y"] - seen["x"]).mean((0, 2, 3)), atol=1e-5, rtol=0
    )
    memory = json.loads((out / "memory.json").read_text())["layer3.sr"]
    torch.testing.assert_close(
        torch.tensor(memory["memory_channel_means"]), sr.memory.mean((2, 3)), atol=1e-6, rtol=0
    )

    # bypassing equals evaluating the plain network with the same weights
    ab = json.loads((out / "ablation.json").read_text())
    plain = remove_sr(copy.deepcopy(run.model))
    assert ab["all_bypassed"] == pytest.approx(accuracy(plain, run, run.splits["test"]))
    assert ab["with_sr"] == pytest.approx(accuracy(run.model, run, run.splits["test"]))
    assert ab["drop"] == pytest.approx(ab["with_sr"] - ab["all_bypassed"])


def test_the_analysed_model_and_its_images_are_on_the_device_asked_for(runs):
    run = load_run(runs["sr"], device="cpu")
    assert run.device == torch.device("cpu") and next(run.model.parameters()).device == run.device
    images = next(image_batches(run, run.splits["val"], torch.arange(3)))
    assert images.device == run.device and images.shape[0] == 3 and images.dtype == torch.float32
    # a model from Python stays where it is unless a device is named
    moved = load_run(runs["sr"], model=run.model, splits={"val": run.splits["val"]})
    assert moved.device == run.device and moved.model is run.model


def test_ablation_per_block_with_two_blocks(runs):
    run = load_run(runs["sr"], runs["data"])
    add_sr(run.model, stage=4, spec=SRSpec(memory_blocks=2), input_size=(3, 32, 32))
    fill_memory(run.model)
    result = ablation(run)
    assert set(result) == {"with_sr", "all_bypassed", "bypassed layer3.sr", "bypassed layer4.sr", "drop"}
    blocks = dict(sr_blocks(run.model))
    assert set(blocks) == {"layer3.sr", "layer4.sr"}  # put back
    assert run.model.layer3.sr is blocks["layer3.sr"] and run.model.layer4.sr is blocks["layer4.sr"]


def test_default_classes_are_spread_and_names_work():
    names = tuple(f"c{i}" for i in range(100))
    assert pick_classes(names, None) == [0, 25, 50, 74, 99]
    assert pick_classes(names[:3], None) == [0, 1, 2]
    assert pick_classes(names, ["c7", "12"]) == [7, 12]
    with pytest.raises(ValueError, match="unknown class 'tulip': give an index 0..99 or a name"):
        pick_classes(names, ["tulip"])
    assert pick_classes(names[:10], None, count=3, present=[1, 4, 6, 8]) == [1, 6, 8]  # the split's own


def test_a_class_the_split_lacks_is_refused_not_drawn_empty(runs):
    run = load_run(runs["sr"])
    val = run.splits["val"]
    run.splits["val"] = val.subset((val.labels != 3).nonzero().flatten())
    with pytest.raises(
        ValueError,
        match="the val split of .* has no images of class3: choose other classes \\(or another split\\)",
    ):
        analyze(run, [1, 3], per_class=2)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.tags, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if attrs.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(attrs[key])


@pytest.mark.slow
def test_report_embeds_every_figure(runs, tmp_path):
    out = tmp_path / "report.html"
    assert (
        main(
            argv(
                "report {run} {run2} --data {data} --per-class 3 --html {out}",
                run=runs["sr"],
                run2=runs["plain"],
                data=runs["data"],
                out=out,
            )
        )
        == 0
    )
    page = _Page()
    page.feed(out.read_text())
    figures = sorted((runs["sr"] / "analysis").glob("*.png"))
    assert len(page.images) == len(figures) + 2  # + the runs' learning curves on one plot, the SR memory
    assert (runs["sr"] / "memory_curves.png").is_file() and not (runs["plain"] / "memory_curves.png").exists()
    assert all(src.startswith("data:image/png;base64,") and len(src) > 1000 for src in page.images)
    assert not page.external and page.tags[0] == "html"
    text = out.read_text()
    # the header: when, by what command, with which code on which machine; what the runs trained with
    header = text.split('<p class="meta">')[1].split("</p>")[0]
    assert "UTC" in header and f"by <code>srblock report {runs['sr']}" in header and "torch " in header
    assert "The runs trained with srblock" in header
    # the summary: one row per configuration, the SR row against its plain twin, every column explained
    summary = text.split("<h2>Summary</h2>")[1].split("</dl>")[0]
    assert summary.count("resnet10s_cifar-sr3p4h8") == 1 and "test top-1 (%)" in summary
    assert "within noise" in summary or "seed" in summary  # (the paired difference's reading)
    for column in ("configuration", "seeds", "vs plain", "parameters", "SR overhead (%)"):
        assert f"<th>{column}</th>" in summary and f"<dt>{column}</dt>" in summary
    # what differs between the configurations, each whole config.yaml folded away
    configurations = text.split("<h2>Configurations</h2>")[1].split("<h2>")[0]
    assert "<th>sr_stage</th>" in configurations and configurations.count("<details>") == 2
    assert "plain (no SR block), so no memory analyses" in configurations
    assert "nothing to analyse" not in text and "train with --set" not in text  # no error tip
    assert "<figcaption>" in text and "The memory over training" in text and "test_acc_bypassed" in text
    # a run's columns headed in words, result.json's key as the tooltip, each explained
    from srblock.analysis.html_page import RESULT_COLUMNS

    runs_part = text.split("<h2>Runs</h2>")[1]
    for key in ("test_acc", "test_acc_bypassed", "sr_mem_ratio", "oh_pct"):
        heading = RESULT_COLUMNS[key][0]
        assert f'<th title="{key}">{heading}</th>' in runs_part and f"<dt>{heading} ({key})</dt>" in runs_part


# injected into a copy of the page: JS errors and failed loads caught from the first line; at load,
# the images that did not load and every element wider than the window (a table's scroll box may
# hold a wide table: the box itself must fit), written into the page for --dump-dom to show
BROWSER_CHECK = (
    "<script>window.__errors = []; window.addEventListener('error', e => window.__errors.push("
    "String(e.message || (e.target && e.target.src) || e)), true);</script>",
    "<script>window.addEventListener('load', () => {"
    "const wide = [...document.querySelectorAll('body *')].filter(el => !el.parentElement.closest('.scroll'))"
    ".filter(el => el.getBoundingClientRect().right > window.innerWidth + 1).map(el => el.tagName);"
    "const images = [...document.images];"
    "const check = {errors: window.__errors, images: images.length,"
    " broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).length, wide: wide,"
    " page: document.documentElement.scrollWidth, window: window.innerWidth};"
    "const pre = document.createElement('pre'); pre.id = 'check'; pre.textContent = JSON.stringify(check);"
    "document.body.appendChild(pre);});</script>",
)


def test_the_report_reads_in_a_real_browser_at_1280_and_800_pixels(runs, tmp_path):
    """The report in headless Chromium (Debian's chromium; .ci/run installs it): no console error,
    every image loaded, nothing wider than a 1280- or an 800-pixel window (its tables were 1193 to
    1268 px in an 1100-px column); a screenshot is kept for a person to look at."""
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("the browser test needs Debian's chromium (apt-get install chromium)")
    out = tmp_path / "report.html"
    line = "report {run} {run2} --data {data} --per-class 3 --html {out}"
    assert main(argv(line, run=runs["sr"], run2=runs["plain"], data=runs["data"], out=out)) == 0
    page = out.read_text()
    checked = tmp_path / "checked.html"
    head, tail = BROWSER_CHECK
    checked.write_text(page.replace("</title>", "</title>" + head, 1).replace("</body>", tail + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    for width in (1280, 800):
        done = subprocess.run(
            [chromium, *flags, f"--window-size={width},900", "--dump-dom", checked.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        found = json.loads(done.stdout.split('<pre id="check">')[1].split("</pre>")[0])
        assert found["errors"] == [] and found["broken"] == 0 and found["images"] >= 5, found
        assert found["wide"] == [] and found["page"] <= found["window"] == width, found
    screenshot = tmp_path / "report-1280.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1280,2400", f"--screenshot={screenshot}", out.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert screenshot.stat().st_size > 10_000
    print(f"the report as Chromium draws it: {screenshot}")


def test_errors_are_one_line(runs, tmp_path, capsys):
    assert main(["analyze", str(runs["plain"]), "--data", str(runs["data"])]) == 2
    assert (
        "trained resnet10s_cifar without SR blocks: nothing to analyse (train with --set sr_stage=M)"
        in capsys.readouterr().err
    )
    assert main(["analyze", str(tmp_path)]) == 2
    assert "is not a run folder (no config.yaml)" in capsys.readouterr().err
    assert main(["analyze", str(runs["sr"]), "--data", str(runs["data"]), "--classes", "tulip"]) == 2
    assert "unknown class 'tulip'" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_refuses_a_segmentation_run_and_report_shows_it(seg_run, tmp_path, capsys):
    folder = seg_run
    assert main(["analyze", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is a segmentation run: the analyses compare" in err
    # the report shows what a segmentation run has: config, curves over iterations, mIoU
    assert main(["report", str(folder), "--html", str(tmp_path / "report.html")]) == 0  # data remembered
    page = (tmp_path / "report.html").read_text()
    assert "test_miou_ms" in page and "is a segmentation run: the analyses compare" in page
    # learning curves, and images beside labels and predictions
    assert page.count("data:image/png;base64") == 3  # learning curves, the memory over training, predictions
    assert (folder / "analysis" / "segmentation_examples.png").is_file()


@pytest.mark.slow
def test_a_run_whose_data_moved_asks_for_data(runs, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(runs["sr"], moved)
    config = moved / "config.yaml"
    config.write_text(config.read_text().replace(str(runs["data"].resolve()), str(tmp_path / "gone")))
    assert main(["analyze", str(moved), "--per-class", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the data folder this run was trained from, is gone: pass --data DIR" in err
    assert main(["analyze", str(moved), "--per-class", "2", "--data", str(runs["data"])]) == 0
    assert (
        main(
            argv(
                "report {run} --per-class 2 --data {data} --html {out}",
                run=moved,
                data=runs["data"],
                out=tmp_path / "r.html",
            )
        )
        == 0
    )


def test_report_names_a_corrupt_result_instead_of_dropping_the_table(runs, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(runs["plain"].parent, broken)
    (broken / "seed0" / "result.json").write_text("{not json")
    assert main(["report", str(broken / "seed0"), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "result.json is not valid JSON" in err


def test_report_stops_on_what_it_cannot_show_instead_of_hiding_it(runs, tmp_path, capsys):
    out = ["--html", str(tmp_path / "r.html")]
    assert main(["report", str(runs["sr"]), "--classes", "nosuchclass", *out]) == 2
    assert "unknown class 'nosuchclass'" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(runs["sr"], broken)
    (broken / "best.ckpt").write_bytes((broken / "best.ckpt").read_bytes()[:1000])
    assert main(["report", str(broken), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "best.ckpt is corrupt or truncated" in err
    assert err.endswith(f"train the run again (delete {broken} or use another --out)")
    (broken / "best.ckpt").write_bytes(b"\x80\x02random bytes, not a checkpoint")
    assert main(["report", str(broken), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "best.ckpt is corrupt or truncated" in err
    torch.save({"model": argparse.Namespace()}, broken / "best.ckpt")  # a pickled Python object
    assert main(["report", str(broken), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "(not a tensors-only torch file)" in err and "Weights only" not in err


def test_a_diverged_run_is_named_as_such_and_left_out_of_a_report(runs, tmp_path, capsys):
    """predict, analyze, export and report said "finish the run first (--resume)" of a run that
    --resume skips, and one diverged run stopped a whole report."""
    why = "training diverged in X at epoch 2: the training loss is nan; train again with a smaller lr"
    stopped = tmp_path / "cifar10" / f"resnet10s_cifar-sr3p4h8{SET}" / "seed1"
    shutil.copytree(runs["sr"], stopped)
    (stopped / "result.json").unlink()
    (stopped / "diverged.txt").write_text(why + "\n")
    out = ["--html", str(tmp_path / "r.html")]
    assert main(["report", str(runs["plain"]), str(stopped), *out]) == 0
    err = capsys.readouterr().err
    assert f"srblock report: left out {stopped}: stopped as diverged ({why})" in err
    assert "Left out: stopped as diverged" in (tmp_path / "r.html").read_text()
    assert main(["report", str(stopped), *out]) == 2
    assert "every run given stopped as diverged" in capsys.readouterr().err
    # with its best checkpoint from before: read, with a note that it is not a finished run's
    assert main(["export", str(stopped), "--onnx", str(tmp_path / "s.onnx")]) == 0
    assert f"note: {stopped} stopped as diverged ({why}): its best checkpoint before that is exported" in (
        capsys.readouterr().err
    )
    (stopped / "best.ckpt").unlink()  # diverged in its first epoch: no checkpoint at all
    for words in (["analyze", str(stopped)], ["predict", str(stopped), str(tmp_path)]):
        assert main(words) == 2
        err = capsys.readouterr().err.strip()
        assert "stopped as diverged before its first checkpoint" in err and "finish the run" not in err
        assert "\n" not in err


def test_report_says_a_run_is_unfinished_and_refuses_analysis_flags_with_nothing_to_analyse(
    runs, tmp_path, capsys
):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["plain"], unfinished)
    (unfinished / "result.json").unlink()
    out = ["--html", str(tmp_path / "r.html")]
    assert main(["report", str(unfinished), "--per-class", "3", *out]) == 2
    assert "--per-class does nothing here: no run given has an SR block" in capsys.readouterr().err
    assert main(["report", str(unfinished), "--out", str(tmp_path / "r.html")]) == 0  # the old name of --html
    err = capsys.readouterr().err
    assert "srblock: --out is now --html FILE; the old flag stops working in the next release" in err
    assert f"note: {unfinished} is not finished (no result.json)" in err
    assert "<b>Not finished</b>" in (tmp_path / "r.html").read_text()


def test_the_reports_curves_keep_tasks_and_same_named_configurations_apart(tmp_path):
    """A report of classification and segmentation runs drew both on one epoch axis (KeyError
    'epoch'); two recipes' configurations of one name were averaged as one."""
    from srblock.analysis.report import _curves, _label

    rows = {
        "epoch": "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n"
        "1,0.1,2.0,20,2.1,19,1\n2,0.1,1.5,40,1.6,38,1\n",
        "iteration": "iteration,lr,train_loss,val_miou,val_macc,seconds\n"
        "10,0.01,3.0,5,9,1\n20,0.01,2.5,8,12,1\n",
    }
    runs = []
    for recipe, unit in (("cifar10", "epoch"), ("cifar100", "epoch"), ("cityscapes", "iteration")):
        folder = tmp_path / recipe / "resnet18_cifar" / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(rows[unit])
        runs.append(folder)
    assert [_label(r, runs) for r in runs] == [
        "cifar10/resnet18_cifar",
        "cifar100/resnet18_cifar",
        "cityscapes/resnet18_cifar",
    ]
    assert _label(runs[0], runs[:1]) == "resnet18_cifar"  # alone: its own name
    parts = _curves(runs)
    assert parts[0] == "<h2>Learning curves</h2>" and len(parts) == 3  # one figure per epoch and iteration
    assert "Per epoch:" in parts[1] and "Per iteration:" in parts[2]
    assert all('src="data:image/png;base64,' in part for part in parts[1:])
