"""Segmentation: the models, Cityscapes files, transforms, metrics, multi-scale inference, the loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from srblock import create_model, sr_blocks
from srblock.cli import main
from srblock.data import EpochSampler, SeededItems, load_dataset
from srblock.data.canvas import paste_canvases
from srblock.data.cityscapes import CITYSCAPES_CLASSES, train_id_lut
from srblock.data.seg_transforms import IGNORE_INDEX, SegTrainTransform
from srblock.seg_eval import SegmentationMetric, iou_from_confusion, segment
from srblock.train import make_config
from srblock.train.schedule import poly_factor

from .conftest import fill_memory
from .datagen import write_cityscapes, write_fashion_mnist


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    return write_cityscapes(tmp_path_factory.mktemp("cityscapes"))


# --- models ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ours, theirs", [("fcn_r50_d8", "fcn_resnet50"), ("deeplabv3_r50_d8", "deeplabv3_resnet50")])
def test_r50_d8_models_are_torchvisions_with_dropout_01(ours, theirs):
    with torch.device("meta"):
        model = create_model(ours)
        reference = torchvision.models.get_model(theirs, weights=None, weights_backbone=None, num_classes=19, aux_loss=True)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}  # torchvision weights load
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.1}
    backbone = model.backbone  # output stride 8: stages 3 and 4 dilate instead of striding
    assert backbone.layer3[0].conv2.stride == backbone.layer4[0].conv2.stride == (1, 1)
    assert backbone.layer3[1].conv2.dilation == (2, 2) and backbone.layer4[1].conv2.dilation == (4, 4)
    if ours.startswith("deeplabv3"):
        rates = [branch[0].dilation[0] for branch in list(model.classifier[0].convs)[1:4]]
        assert rates == [12, 24, 36] and model.classifier[0].convs[0][0].kernel_size == (1, 1)


@pytest.mark.parametrize("name, blocks", [("fcn_r50_d8", 3), ("deeplabv3_r50_d8", 2)])
def test_sr_after_stage_2_sized_for_the_crop(name, blocks):
    with torch.device("meta"):
        model = create_model(name, sr_stage=2)
    [(where, block)] = sr_blocks(model)
    assert where == "backbone.layer2.sr" and block.memory_blocks == blocks
    assert (block.channels, *block.size) == (512, 64, 128)  # 512x1024 crop at output stride 8


@pytest.mark.parametrize("name, size", [("fcn_resnet10s", (1, 64, 64)), ("deeplabv3_r50_d8", (3, 64, 96))])
def test_fresh_sr_block_leaves_the_segmentation_model_unchanged(name, size):
    plain = create_model(name).eval()
    with_sr = create_model(name, sr_stage=2, input_size=size).eval()
    missing = with_sr.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".sr." in k for k in missing)
    x = torch.randn(2, *size)
    with torch.no_grad():
        assert torch.equal(plain(x)["out"], with_sr(x)["out"])
        # other image sizes (whole-image, multi-scale testing) go through the block's resizing
        bigger = torch.randn(1, size[0], size[1] * 2, size[2] + 16)
        assert torch.equal(plain(bigger)["out"], with_sr(bigger)["out"])


def test_aux_head_only_while_training():
    model = create_model("fcn_resnet10s")
    x = torch.randn(2, 1, 32, 32)
    assert set(model.train()(x)) == {"out", "aux"}
    assert set(model.eval()(x)) == {"out"}
    assert model(x)["out"].shape == (2, 11, 32, 32)


# --- inference and metrics ------------------------------------------------------------------------

def test_multiscale_flip_inference_returns_the_input_size():
    model = create_model("fcn_resnet10s", sr_stage=2).eval()
    fill_memory(model, 0.1)
    x = torch.randn(2, 1, 48, 72)
    probs = segment(model, x, scales=(0.5, 0.75, 1.0, 1.75), flip=True)
    assert probs.shape == (2, 11, 48, 72)
    assert torch.allclose(probs.sum(1), torch.ones(2, 48, 72), atol=1e-5)
    with torch.no_grad():
        single = model(x)["out"].softmax(1)
    assert torch.allclose(segment(model, x), single)


def test_miou_against_a_hand_computed_confusion_matrix():
    # 3 classes; 255 is ignored wherever the label says so, whatever the prediction
    labels = torch.tensor([[0, 0, 1, 1, 2, 255, 255, 2]])
    preds = torch.tensor([[0, 1, 1, 1, 0, 2, 0, 2]])
    logits = torch.nn.functional.one_hot(preds, 3).permute(0, 2, 1).float()[..., None]  # B x K x W x 1
    metric = SegmentationMetric(3, IGNORE_INDEX)
    metric.update(logits, labels[..., None])
    scores = metric.compute()
    # rows: label, columns: prediction: [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = [1 / (2 + 2 - 1), 2 / (2 + 3 - 2), 1 / (2 + 1 - 1)]
    acc = [1 / 2, 2 / 2, 1 / 2]
    assert scores["class_iou"] == pytest.approx([100 * v for v in iou])
    assert scores["class_acc"] == pytest.approx([100 * v for v in acc])
    assert scores["miou"] == pytest.approx(100 * sum(iou) / 3)
    assert scores["macc"] == pytest.approx(100 * sum(acc) / 3)
    assert scores["pixel_acc"] == pytest.approx(100 * 4 / 6)


def test_a_class_absent_from_labels_and_predictions_is_left_out_of_the_mean():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    scores = iou_from_confusion(confusion)
    assert torch.isnan(scores["iou"][2]) and torch.isnan(scores["acc"][2])
    assert scores["miou"].item() == pytest.approx((3 / 4 + 2 / 3) / 2)


@pytest.mark.parametrize("item, message", [
    ("iterations=0", "iterations must be positive"),
    ("eval_interval=-5", "eval_interval must be positive"),
    ("crop_size=512", None),
    ("crop_size=0x5", "crop_size must be HxW"),
    ("scale_range=[2.0, 0.5]", "scale_range must be"),
    ("ms_scales=[]", "ms_scales must be"),
])
def test_segmentation_keys_are_checked(item, message):
    from srblock.train.config import parse_set

    if message is None:
        assert make_config("cityscapes", parse_set([item])).crop_hw() == (512, 512)
        return
    with pytest.raises(ValueError, match=message):
        parse_set([item])


def test_poly_schedule_decays_to_the_minimum():
    factors = [poly_factor(i, 80_000, 0.9, 1e-4 / 0.01) for i in (0, 40_000, 80_000)]
    assert factors[0] == 1.0 and factors[2] == pytest.approx(0.01)
    assert factors[1] == pytest.approx(0.99 * 0.5**0.9 + 0.01)


# --- data -----------------------------------------------------------------------------------------

def test_label_id_to_train_id_map():
    lut = train_id_lut()
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[-1] == "bicycle"
    assert [lut[i].item() for i in (7, 8, 11, 23, 24, 26, 33)] == [0, 1, 2, 10, 11, 13, 18]
    assert [lut[i].item() for i in (0, 1, 3, 9, 14, 29, 30, 200)] == [255] * 8  # void classes and unknown ids
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


def test_cityscapes_layout_is_read_and_mapped(cityscapes):
    info, train, val = load_dataset("cityscapes", cityscapes)
    assert (len(train), len(val), info.num_classes, info.task) == (4, 2, 19, "segment")
    image, label = train[0]
    assert image.shape == (3, 32, 64) and image.dtype == torch.uint8
    assert label.shape == (32, 64) and set(label.unique().tolist()) <= set(range(19)) | {255}
    assert (label == 255).any()  # ids 0, 1 and 9 (parking) are ignored


@pytest.mark.parametrize("damage, message", [
    (lambda root: None, "not a Cityscapes folder"),
    (lambda root: (root / "leftImg8bit" / "train").mkdir(parents=True), "not a Cityscapes folder"),
])
def test_wrong_cityscapes_layout_is_a_clear_error(tmp_path, damage, message):
    damage(tmp_path)
    with pytest.raises(FileNotFoundError, match=message):
        load_dataset("cityscapes", tmp_path)


def test_missing_label_files_are_named(tmp_path):
    root = write_cityscapes(tmp_path, train=2, val=1)
    next((root / "gtFine" / "train").rglob("*_labelIds.png")).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 2 images .* have no labelIds file"):
        load_dataset("cityscapes", root)


def test_train_transform_crops_pads_with_ignore_and_is_seeded():
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    mask = torch.randint(0, 19, (20, 30), dtype=torch.uint8)
    transform = SegTrainTransform((40, 48), (1.0, 1.0), (0.5,) * 3, (0.25,) * 3)
    x, y = transform(image, mask)
    assert x.shape == (3, 40, 48) and x.dtype == torch.float32 and y.shape == (40, 48) and y.dtype == torch.int64
    assert (y == 255).sum() == 40 * 48 - 20 * 30  # padding is ignored, nothing else
    items = SeededItems(_Apply(transform, image, mask), seed=3)
    a, b, c = items[(0, 1)], items[(0, 1)], items[(1, 1)]
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


class _Apply:
    def __init__(self, transform, image, mask) -> None:
        self.transform, self.image, self.mask = transform, image, mask

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return self.transform(self.image, self.mask)


def test_epoch_sampler_shards_resumes_and_evaluates_each_item_once():
    train = [list(EpochSampler(10, seed=1, shuffle=True, rank=r, world_size=3, drop_last=True)) for r in range(3)]
    assert all(len(keys) == 3 for keys in train) and len({k for keys in train for k in keys}) == 9
    sampler = EpochSampler(10, seed=1, shuffle=True)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full
    evaluation = [list(EpochSampler(10, seed=0, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for keys in evaluation for _, i in keys) == list(range(10))


def test_canvases_label_each_item_with_its_class():
    items = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    items[:, :, 1:3, 1:3] = 200  # a 2x2 blob of ink in each item
    canvases, masks = paste_canvases(items, torch.tensor([0, 5, 9]), 20, size=8, items=(1, 1), seed=0)
    assert canvases.shape == (20, 1, 8, 8) and masks.shape == (20, 8, 8)
    for canvas, mask in zip(canvases, masks):
        assert (mask > 0).sum() == 4 and set(mask.unique().tolist()) <= {0, 1, 6, 10}
        assert torch.equal(canvas[0] > 0, mask > 0)


# --- the loop and the commands ---------------------------------------------------------------------

TINY_SEG = ["--set", "iterations=2", "--set", "eval_interval=1", "--set", "batch_size=2", "--set", "crop_size=32x48",
            "--set", "num_workers=0", "--set", "ms_scales=[0.5, 1.0]", "--quiet"]


def test_cityscapes_deeplabv3_sr_trains_and_evaluates(cityscapes, tmp_path):
    out = tmp_path / "runs"
    code = main(["train", "cityscapes", "--data", str(cityscapes), "--out", str(out), "--set", "sr_stage=2",
                 "--set", "sr_blocks=2", *TINY_SEG])
    assert code == 0
    folder = out / "cityscapes" / "deeplabv3_r50_d8-sr2p2h8" / "seed0"
    result = json.loads((folder / "result.json").read_text())
    assert 0 <= result["test_miou"] <= 100 and 0 <= result["test_miou_ms"] <= 100 and 0 <= result["test_macc"] <= 100
    assert result["best_iteration"] == 2 and result["sr_params"] > 0 and len(result["class_iou"]) == 19
    table = (folder / "class_iou.md").read_text()
    assert "| road" in table and "iou_ms" in table
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) == 3  # evaluated after iterations 1 and 2
    state = torch.load(folder / "last.ckpt", weights_only=True)
    assert state["iteration"] == 2 and state["model"]["backbone.layer2.sr.memory"].shape == (2, 512, 4, 6)


def test_killed_segmentation_run_resumes_exactly(cityscapes, tmp_path, monkeypatch):
    import srblock.train.seg_loop as seg_loop

    args = ["train", "cityscapes", "--data", str(cityscapes), "--set", "model=fcn_resnet10s", "--set", "sr_stage=2",
            "--set", "iterations=5", "--set", "eval_interval=5", "--set", "save_interval=2", "--set", "batch_size=2",
            "--set", "crop_size=32x32", "--set", "num_workers=0", "--set", "ms_scales=[1.0]", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    real, calls = seg_loop.seg_loss, []

    def dies_at_the_fourth_step(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill after 3 iterations, the last checkpoint at 2
        return real(*a, **k)

    monkeypatch.setattr(seg_loop, "seg_loss", dies_at_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--out", str(tmp_path / "killed")])
    monkeypatch.setattr(seg_loop, "seg_loss", real)
    folder = Path("cityscapes") / "fcn_resnet10s-sr2p4h8" / "seed0"
    assert torch.load(tmp_path / "killed" / folder / "last.ckpt", weights_only=True)["iteration"] == 2
    assert main([*args, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    whole = torch.load(tmp_path / "whole" / folder / "last.ckpt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "killed" / folder / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_wrong_cityscapes_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "cityscapes", "--data", str(tmp_path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "leftImg8bit" in err and "gtFine" in err


def test_segmentation_demo_tiny(tmp_path, capsys):
    data = write_fashion_mnist(tmp_path / "fashion", train=60, test=20)
    assert main(["demo", "--task", "seg", "--tiny", "--data", str(data), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fcn_resnet10s + SR" in out and "test_miou" in out
    results = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "demo-seg-tiny").rglob("result.json")]
    assert len(results) == 2 and sorted(r["sr_params"] > 0 for r in results) == [False, True]


def test_params_table_cityscapes(capsys):
    assert main(["params", "--table", "cityscapes", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["F-CONV", "F-CONV + SR", "DLv3", "DLv3 + SR"]
    fcn_sr, dl_sr = rows[1], rows[3]
    assert (fcn_sr["M"], fcn_sr["P"], dl_sr["M"], dl_sr["P"]) == (2, 3, 2, 2)
    # Eq. 1 at 512 x 64 x 128 (a 512x1024 crop at output stride 8)
    assert fcn_sr["sr_params"] == 512 + 1 + 64 * 128 * 8 + 8 + 8 * 3 + 3 + 3 * 512 * 64 * 128
    assert fcn_sr["paper_oh_pct"] == 12.85 and dl_sr["paper_oh_pct"] == 24.83
    assert rows[0]["sr_params"] == 0 and rows[0]["base_params"] == rows[1]["base_params"]


def test_every_shipped_sweep_builds_its_runs(tmp_path):
    from srblock.cli.sweep import sweep_jobs
    from srblock.recipes import list_recipe_files, load_yaml

    sweeps = [name for name in list_recipe_files() if "runs" in load_yaml(name)]
    assert {"imagenet-table3", "cityscapes-table4"} <= set(sweeps)
    for name in sweeps:
        jobs = sweep_jobs(name, tmp_path, {}, [0])
        assert jobs and all(cfg.dataset == make_config(load_yaml(name)["recipe"]).dataset for cfg, _, _ in jobs)


def test_analyze_refuses_a_segmentation_run_and_report_shows_it(cityscapes, tmp_path, capsys):
    assert main(["train", "cityscapes", "--data", str(cityscapes), "--out", str(tmp_path), "--set", "model=fcn_resnet10s",
                 *TINY_SEG]) == 0
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert main(["analyze", str(folder), "--data", str(cityscapes)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "segmentation runs are not supported" in err
    # the report shows what a segmentation run has: config, curves over iterations, mIoU
    assert main(["report", str(folder), "--data", str(cityscapes), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "test_miou_ms" in page and "segmentation runs are not supported" in page
    assert page.count("data:image/png;base64") == 2  # learning curves, and images beside labels and predictions
    assert (folder / "analysis" / "segmentation_examples.png").is_file()


def test_two_processes_count_every_validation_image_once(tmp_path):
    """3 validation images on 2 processes (2 + 1): the synced mIoU equals one process scoring all 3."""
    from srblock.data.seg_transforms import SegEvalTransform
    from srblock.train.checkpoint import load_checkpoint
    from srblock.train.loop import build_model

    from .test_train import srblock_cli

    root = write_cityscapes(tmp_path / "data", train=4, val=3)
    done = srblock_cli("train", "cityscapes", "--data", str(root), "--out", str(tmp_path / "runs"), "--accelerator", "cpu",
                       "--devices", "2", "--set", "model=fcn_resnet10s", "--set", "sr_stage=2", "--set", "ms_flip=false",
                       *TINY_SEG)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    result = json.loads((folder / "result.json").read_text())
    assert result["world_size"] == 2
    info, _, val = load_dataset("cityscapes", root)
    cfg = make_config("cityscapes", {"model": "fcn_resnet10s", "sr_stage": 2, "crop_size": "32x48"})
    model = build_model(cfg, 19, (3, 32, 48)).eval()
    model.load_state_dict(load_checkpoint(folder / "best.ckpt")["model"])
    metric = SegmentationMetric(19, IGNORE_INDEX)
    whole = val.with_transform(SegEvalTransform(info.mean, info.std))
    for i in range(len(whole)):
        image, label = whole[i]
        metric.update(segment(model, image[None]), label[None])
    assert result["test_miou"] == pytest.approx(metric.compute()["miou"], abs=1e-4)


def test_export_a_segmentation_run_folder(cityscapes, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["train", "cityscapes", "--data", str(cityscapes), "--out", str(tmp_path), "--set", "model=fcn_resnet10s",
                 "--set", "sr_stage=2", *TINY_SEG]) == 0
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert main(["export", str(folder), "--onnx", str(tmp_path / "seg.onnx")]) == 0
    out = capsys.readouterr().out
    assert "1 x 3 x 32 x 48" in out and (tmp_path / "seg.onnx").is_file()  # the training crop's size
