"""The segmentation loop (Cityscapes layout and the demo's canvases, tiny files the tests write)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from srblock.checkpoint import load_checkpoint
from srblock.cli import main
from srblock.data import load_dataset
from srblock.data.seg_transforms import IGNORE_INDEX, SegEvalTransform
from srblock.keys import make_config
from srblock.run_model import build_model
from srblock.seg_eval import SegmentationMetric, segment

from .helpers import TINY_SEG, argv, srblock_cli, trained_in, write_cityscapes


@pytest.mark.slow
def test_cityscapes_deeplabv3_sr_trains_and_evaluates(cityscapes, tmp_path):
    out = tmp_path / "runs"
    code = main(
        argv(
            "train cityscapes --data {data} --out {out} --set sr_stage=2 --set sr_memory_blocks=2",
            data=cityscapes,
            out=out,
        )
        + TINY_SEG
    )
    assert code == 0
    folder = trained_in(out, "cityscapes", argv("--set sr_stage=2 --set sr_memory_blocks=2") + TINY_SEG)
    result = json.loads((folder / "result.json").read_text())
    assert (
        0 <= result["test_miou"] <= 100
        and 0 <= result["test_miou_ms"] <= 100
        and 0 <= result["test_macc"] <= 100
    )
    assert result["best_iteration"] == 2 and result["sr_params"] > 0 and len(result["class_iou"]) == 19
    table = (folder / "class_iou.md").read_text()
    assert "| road" in table and "iou_ms" in table
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) == 3  # evaluated after iterations 1 and 2
    state = torch.load(folder / "last.ckpt", weights_only=True)
    assert state["iteration"] == 2 and state["model"]["backbone.layer2.sr.memory"].shape == (2, 512, 4, 6)


@pytest.mark.slow
def test_killed_segmentation_run_resumes_exactly(cityscapes, tmp_path, monkeypatch, capsys):
    import srblock.train.segment as seg_loop

    args = argv(
        "train cityscapes --data {data} --set model=fcn_resnet10s --set sr_stage=2 --set iterations=5 "
        "--set eval_interval=5 --set save_interval=2 --set batch_size=2 --set crop_size=32x32 "
        "--set num_workers=0 --set ms_scales=[1.0] --quiet",
        data=cityscapes,
    )
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    real, calls = seg_loop.seg_loss, []

    def dies_at_the_fourth_step(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill after 3 iterations, the last checkpoint at 2
        return real(*a, **k)

    monkeypatch.setattr(seg_loop, "seg_loss", dies_at_the_fourth_step)
    assert main([*args, "--out", str(tmp_path / "killed")]) == 130  # Ctrl-C: no traceback, and where to go on
    err = capsys.readouterr().err.strip()
    folder = trained_in(Path(), "cityscapes", args)
    again = shlex.join(["srblock", *args, "--out", str(tmp_path / "killed"), "--resume"])
    assert err == (
        f"srblock train: interrupted in {tmp_path / 'killed' / folder}, whose last.ckpt is after "
        f"iteration 2; continue with: {again}"
    )
    monkeypatch.setattr(seg_loop, "seg_loss", real)
    assert torch.load(tmp_path / "killed" / folder / "last.ckpt", weights_only=True)["iteration"] == 2
    assert main([*args, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    whole = torch.load(tmp_path / "whole" / folder / "last.ckpt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "killed" / folder / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_wrong_cityscapes_folder_is_one_line_exit_2(tmp_path, capsys):
    assert (
        main(["train", "cityscapes", "--data", str(tmp_path), "--out", str(tmp_path / "runs"), "--quiet"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "leftImg8bit" in err and "gtFine" in err


@pytest.mark.slow
def test_two_processes_count_every_validation_image_once(tmp_path):
    """3 validation images on 2 processes (2 + 1): the synced mIoU equals one process scoring all 3."""
    root = write_cityscapes(tmp_path / "data", train=4, val=3)
    done = srblock_cli(
        *argv(
            "train cityscapes --data {data} --out {out} --accelerator cpu --devices 2 "
            "--set model=fcn_resnet10s --set sr_stage=2 --set ms_flip=false",
            data=root,
            out=tmp_path / "runs",
        ),
        *TINY_SEG,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    result = json.loads((folder / "result.json").read_text())
    assert result["world_size"] == 2
    info, _, val = load_dataset("cityscapes", root)
    cfg = make_config("cityscapes", {"model": "fcn_resnet10s", "sr_stage": 2, "crop_size": "32x48"})
    model = build_model(cfg).eval()
    model.load_state_dict(load_checkpoint(folder / "best.ckpt")["model"])
    metric = SegmentationMetric(19, IGNORE_INDEX)
    whole = val.with_transform(SegEvalTransform(info.mean, info.std))
    for i in range(len(whole)):
        image, label = whole[i]
        metric.update(segment(model, image[None]), label[None])
    assert result["test_miou"] == pytest.approx(metric.compute()["miou"], abs=1e-4)


def test_deeplabv3_with_one_image_per_process_is_refused_before_training(cityscapes, tmp_path, capsys):
    """BatchNorm in DeepLabv3's image-pooling branch cannot train on one image (PyTorch fails mid-step)."""
    args = (
        argv("train cityscapes --data {data} --out {out}", data=cityscapes, out=tmp_path)
        + TINY_SEG
        + argv("--set batch_size=1")
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "\n" not in err
        and "batch_size=1 cannot train deeplabv3_r50_d8" in err
        and "set batch_size=2 or more" in err
    )
    assert not any(tmp_path.rglob("config.yaml"))  # refused before the run folder was made
    assert main([*args, "--set", "model=fcn_resnet10s"]) == 0  # no image pooling: one image is fine
