"""ImageNet: the folder layout, the example's transforms, JPEG decoding by batch, one epoch end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from srblock.cli import main
from srblock.data import load_dataset
from srblock.data.imagenet import collate_encoded, decode_batch, imagenet_transform
from srblock.train import make_config

from .datagen import write_imagenet


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return write_imagenet(tmp_path_factory.mktemp("imagenet"))


def test_image_folder_layout_is_read(imagenet):
    info, train, val = load_dataset("imagenet", imagenet)
    assert (len(train), len(val), train.classes) == (12, 6, ("n00000000", "n00000001", "n00000002"))
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and info.in_memory is False
    image, label = train[5]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and label == 1


def test_transforms_are_the_pytorch_examples():
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert imagenet_transform(True, 224)(image).shape == (3, 224, 224)
    val = imagenet_transform(False, 224)
    resize, crop = val.transforms[0], val.transforms[1]
    assert (list(resize.size), list(crop.size)) == ([256], [224, 224])  # resize 256 (= 224 / 0.875), centre crop 224
    x = val(image)
    assert x.dtype == torch.float32 and x.shape == (3, 224, 224) and -3 < x.mean() < 3


def test_batch_decoding_equals_decoding_in_workers(imagenet):
    """The gpu_decode path (here on the CPU) gives the validation images the worker path gives."""
    _, _, val = load_dataset("imagenet", imagenet)
    transform = imagenet_transform(False, 32)
    encoded, labels = collate_encoded([val.with_transform(None, encoded=True)[i] for i in range(4)])
    data, lengths = encoded
    assert data.dtype == torch.uint8 and data.dim() == 1 and len(lengths) == 4 and lengths.sum() == len(data)
    batch = decode_batch(encoded, transform, torch.device("cpu"))
    per_item = torch.stack([val.with_transform(transform)[i][0] for i in range(4)])
    assert batch.shape == (4, 3, 32, 32) and torch.allclose(batch, per_item, atol=1e-6)
    assert labels.tolist() == [val.samples[i][1] for i in range(4)]


def test_recipe_is_the_papers():
    cfg = make_config("imagenet")
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (0.1, 0.9, 1e-4, 256, 450)
    assert (len(cfg.milestones), cfg.gamma, cfg.image_size, cfg.model, cfg.val_fraction) == (5, 0.1, 224, "resnet50", 0.0)


@pytest.mark.parametrize("gpu_decode", [False, True])
def test_one_epoch_end_to_end_with_top5(imagenet, tmp_path, gpu_decode):
    out = tmp_path / "runs"
    code = main(["train", "imagenet", "--data", str(imagenet), "--out", str(out), "--quiet",
                 "--set", "epochs=1", "--set", "batch_size=4", "--set", "eval_batch_size=4", "--set", "image_size=32",
                 "--set", "num_workers=1", "--set", "sr_stage=3", "--set", "sr_blocks=2",
                 "--set", f"gpu_decode={str(gpu_decode).lower()}"])
    assert code == 0
    [path] = out.rglob("result.json")
    result = json.loads(path.read_text())
    assert 0 <= result["test_acc"] <= result["test_top5"] <= 100
    assert result["best_val_acc"] is None and result["best_epoch"] == 0  # no validation split: the last epoch
    assert result["sr_params"] > 0 and result["base_params"] == 25_557_032


@pytest.mark.parametrize("damage, message", [
    (lambda root: shutil.rmtree(root / "val"), "val is missing"),
    (lambda root: (root / "val" / "n00000000").rename(root / "val" / "other"), "different class folders"),
    (lambda root: [p.unlink() for p in (root / "train" / "n00000001").iterdir()], "class folders without images"),
])
def test_wrong_layouts_are_clear_errors(tmp_path, damage, message, capsys):
    root = write_imagenet(tmp_path / "imagenet", per_class=1, val_per_class=1)
    damage(root)
    assert main(["train", "imagenet", "--data", str(root), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_two_processes_with_uneven_validation_shards(tmp_path):
    """3 validation images, batch 1, 2 processes: 2 batches on one, 1 on the other; no hang, all counted."""
    from .test_train import srblock_cli

    root = write_imagenet(tmp_path / "imagenet", per_class=2, val_per_class=1)
    done = srblock_cli("train", "imagenet", "--data", str(root), "--out", str(tmp_path / "runs"), "--accelerator", "cpu",
                       "--devices", "2", "--quiet", "--set", "model=resnet10s_cifar", "--set", "epochs=1",
                       "--set", "batch_size=2", "--set", "eval_batch_size=1", "--set", "image_size=32",
                       "--set", "num_workers=0")
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = (tmp_path / "runs").rglob("result.json")
    result = json.loads(path.read_text())
    assert result["world_size"] == 2
    # the synced top-1 equals one process scoring the 3 images with the tested checkpoint
    from srblock.train.loop import trained_model

    model, _, input_size = trained_model(path.parent)
    _, _, val = load_dataset("imagenet", root)
    val = val.with_transform(imagenet_transform(False, 32))
    with torch.no_grad():
        hits = sum(int(model(val[i][0][None]).argmax(1).item() == val[i][1]) for i in range(len(val)))
    assert input_size == (3, 32, 32) and result["test_acc"] == pytest.approx(100 * hits / 3, abs=1e-4)
