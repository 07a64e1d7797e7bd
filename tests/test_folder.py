"""A user's own class folders: reading them (every image mode and size), training on them, and
every bad folder as a one-line error. The pictures are real Fashion-MNIST ones written as PNGs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from srblock.cli import main
from srblock.data.folder import folder_classes, load_folder
from srblock.data.imagenet import imagenet_transform
from srblock.data.images import UnreadableImage

from .helpers import FOLDER_RUN, argv, write_image_folder

CLASSES = ["Sneaker", "T-shirt-top", "Trouser"]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """3 classes of real Fashion-MNIST pictures: 60 training, 15 validation and 15 test images each."""
    return write_image_folder(tmp_path_factory.mktemp("pictures"))


def test_classes_and_splits_come_from_the_folders(pictures):
    assert folder_classes(pictures) == tuple(CLASSES)
    train, val, test = load_folder(pictures)
    assert (len(train), len(val), len(test)) == (180, 45, 45) and train.classes == tuple(CLASSES)
    assert sorted(set(train.labels.tolist())) == [0, 1, 2]


@pytest.mark.parametrize("name", ["validation", "valid"])
def test_the_validation_split_is_read_under_its_other_names(pictures, tmp_path, name):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    (data / "val").rename(data / name)  # Hugging Face's and timm's folders, and Kaggle's
    train, val, test = load_folder(data)
    assert (len(train), len(val), len(test)) == (180, 45, 45)


@pytest.mark.parametrize(
    "folders, message",
    [
        (
            ("eval",),
            "eval is no split srblock reads (the validation split or the test split?): a data folder",
        ),
        (("extra",), "extra is no split srblock reads: a data folder holds train/, val/ (or validation/"),
        (("validation",), "holds two val splits, val/ and validation/: keep one"),
    ],
)
def test_a_folder_beside_train_that_is_no_split_is_refused_not_ignored(
    pictures, tmp_path, capsys, folders, message
):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    for name in folders:
        shutil.copytree(data / "val", data / name)
    (data / ".ipynb_checkpoints").mkdir()  # hidden: not a split, not refused
    with pytest.raises(ValueError, match=re.escape(message)):
        load_folder(data)
    line = "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 --quiet"
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("channels, augment", [(3, "rrc"), (1, "padcrop")])
def test_every_image_mode_and_size_becomes_the_asked_channels_and_size(pictures, channels, augment):
    train, _, _ = load_folder(pictures)
    transform = imagenet_transform(True, 48, (0.5,) * channels, (0.5,) * channels, augment)
    images = train.with_transform(transform, channels=channels)
    # the first four files of a class are grey, RGB, RGBA and palette PNGs, of 28x28 and 40x30
    shapes = {tuple(images[i][0].shape) for i in range(8)}
    assert shapes == {(channels, 48, 48)}


@pytest.mark.slow
def test_training_on_a_folder_end_to_end(pictures, tmp_path, capsys):
    line = FOLDER_RUN
    assert main(argv(line, data=pictures, out=tmp_path)) == 0
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["classes"] == CLASSES and config["dataset"] == "folder"
    result = json.loads((folder / "result.json").read_text())
    assert result["tested_split"] == "test" and 0 <= result["test_acc"] <= 100
    state = torch.load(folder / "best.ckpt", weights_only=True)["model"]
    assert state["fc.weight"].shape[0] == 3  # three classes, three outputs


@pytest.mark.slow
def test_a_timm_backbone_with_sr_on_a_folder_without_val_or_test(pictures, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(pictures / "train", data / "train")
    line = (
        "train folder --data {data} --out {out} --set model=timm:resnet10t --set sr_stage=3 "
        "--set image_size=32 --set epochs=1 --set batch_size=32 --set num_workers=0 --quiet"
    )
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 0
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    result = json.loads((folder / "result.json").read_text())
    assert result["tested_split"] == "val" and result["sr_params"] > 0
    assert folder.parent.name == "timm_resnet10t-sr3p4h8-batch_size32-epochs1-image_size32"
    # the scored images choose nothing: the last epoch's checkpoint is tested, and says so
    assert result["tested_checkpoint"] == "last" and result["best_val_acc"] is None
    assert result["best_epoch"] == result["epochs"]  # the last, numbered from 1
    capsys.readouterr()
    assert main(["table", str(tmp_path / "runs")]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert "| tested " in header and "| val, last epoch " in row


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: shutil.rmtree(r / "train"), "train is missing: --data must hold train/<class>/<image>"),
        (
            lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir()],
            "holds no class folders: put each class's images in a folder of its own",
        ),
        (lambda r: (r / "val" / "Trouser").rename(r / "val" / "Dress"), "has other class folders than"),
        (
            lambda r: [p.unlink() for p in (r / "test" / "Sneaker").iterdir()],
            "has class folders without images (Sneaker)",
        ),
    ],
)
def test_bad_folders_are_one_line_errors(pictures, tmp_path, capsys, damage, message):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    damage(data)
    line = "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 --quiet"
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_image_that_cannot_be_decoded_stops_the_run_naming_it(pictures, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    broken = data / "train" / "Trouser" / "broken.png"
    whole = next((data / "train" / "Trouser").iterdir()).read_bytes()
    broken.write_bytes(whole[:60])  # its header whole (the probe passes it), its pixels cut off
    train, _, _ = load_folder(data)
    images = train.with_transform(imagenet_transform(False, 32))
    # in a worker process too: the worker's traceback becomes the one line
    from srblock.train.batches import _named_errors

    with pytest.raises(UnreadableImage) as caught:
        for _ in _named_errors(DataLoader(images, batch_size=64, num_workers=1)):
            pass
    assert str(caught.value).startswith(f"{broken} cannot be decoded as an image")
    assert "\n" not in str(caught.value)
    line = (
        "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 "
        "--set epochs=1 --set batch_size={batch} --set num_workers=0 --quiet"
    )
    assert main(argv(line, data=data, out=tmp_path / "small", batch=256)) == 2
    assert "the training split has 181 images, fewer than one batch of 256" in capsys.readouterr().err
    assert main(argv(line, data=data, out=tmp_path / "runs", batch=32)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"srblock train: error: {broken} cannot be decoded") and "\n" not in err


@pytest.mark.slow
def test_an_image_size_the_backbone_cannot_take_is_one_line(pictures, tmp_path, capsys):
    line = (
        "train folder --data {data} --out {out} --set model=timm:vit_tiny_patch16_224 --set image_size=48 "
        "--set num_workers=0 --quiet"
    )
    assert main(argv(line, data=pictures, out=tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "timm:vit_tiny_patch16_224 cannot take 48x48 images with 3 channels" in err and "\n" not in err


@pytest.mark.slow
def test_only_formats_torchvision_decodes_count_and_changed_classes_stop_a_resume(pictures, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    for image in (data / "val" / "Sneaker").iterdir():
        image.rename(image.with_suffix(".bmp"))  # PIL reads BMP, torchvision.io does not
    line = "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 --quiet"
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 2
    err = capsys.readouterr().err  # not dropped without a word: a class would lose its images
    assert "other images are in a format srblock does not read (.bmp): convert to PNG or JPEG" in err
    assert not list((tmp_path / "runs").rglob("config.yaml"))  # a run that could not read its data: no config
    shutil.rmtree(data / "val")
    line += " --set epochs=1 --set batch_size=32 --set num_workers=0"
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 0
    (data / "train" / "Trouser").rename(data / "train" / "Pants")
    (data / "test" / "Trouser").rename(data / "test" / "Pants")
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("config.yaml")]
    (folder / "result.json").unlink()
    assert main(["train", "folder", "--out", str(tmp_path / "runs"), "--resume", "--quiet"]) == 2
    assert (
        "the data's classes are not the run's (config.yaml: 3; now 3; e.g. Pants, Trouser)"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_the_analyses_read_a_folder_run_as_it_was_tested(pictures, tmp_path, capsys):
    line = FOLDER_RUN + " --set sr_stage=3"
    assert main(argv(line, data=pictures, out=tmp_path)) == 0
    assert "test_top5" not in capsys.readouterr().out  # three classes: top-5 is always 100, not shown
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert json.loads((folder / "result.json").read_text())["test_top5"] is None
    assert main(["analyze", str(folder), "--classes", "Trouser", "0"]) == 0
    weights = json.loads((folder / "analysis" / "weights.json").read_text())
    assert weights["classes"] == ["Trouser", "Sneaker"] and weights["split"] == "val"
    [block] = weights["blocks"].values()
    assert block["per_class"]["Trouser"]["images"] == 15 and block["per_class"]["All"]["images"] == 45
    # the ablation reads the test images through the run's own transform: the run's own numbers
    ablation = json.loads((folder / "analysis" / "ablation.json").read_text())
    result = json.loads((folder / "result.json").read_text())
    assert ablation["with_sr"] == pytest.approx(result["test_acc"], abs=1e-4)
    assert ablation["all_bypassed"] == pytest.approx(result["test_acc_bypassed"], abs=1e-4)


@pytest.mark.slow
def test_a_run_remembers_its_data_and_refuses_other_data(pictures, tmp_path, capsys):
    data = tmp_path / "pictures"
    shutil.copytree(pictures, data)
    line = FOLDER_RUN
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 0
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    recorded = json.loads((folder / "data.json").read_text())
    assert recorded["classes"] == CLASSES and recorded["train"]["files"] == 180
    # another folder with the same class names, one more picture: not skipped as finished
    other = tmp_path / "other"
    shutil.copytree(data, other)
    extra = next((other / "train" / "Trouser").iterdir())
    shutil.copy(extra, extra.with_name("copy-" + extra.name))
    capsys.readouterr()
    assert main(argv(line, data=other, out=tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "are not the ones" in err and "train: 180 files then, 181 now" in err
    # the same folder changed: the analyses, and the resume of an unfinished run, stop and say what changed
    extra = next((data / "test" / "Sneaker").iterdir())
    extra.write_bytes(extra.read_bytes() + b"\0")  # one byte more: same names, another size
    assert main(["analyze", str(folder)]) == 2
    assert "test: as many files, other names, labels, sizes or contents" in capsys.readouterr().err
    (folder / "result.json").unlink()
    assert main(["train", "folder", "--out", str(tmp_path / "runs"), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test: as many files, other names, labels, sizes or contents" in err and "\n" not in err


def test_what_a_folder_holds_besides_its_images_is_not_trained_on(pictures, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pictures, data)
    (data / "train" / ".ipynb_checkpoints" / "x").mkdir(parents=True)  # a hidden folder is no class
    shutil.copy(next((data / "train" / "Trouser").iterdir()), data / "train" / ".ipynb_checkpoints" / "x.png")
    (data / "train" / "Trouser" / "loop").symlink_to(data / "train" / "Trouser")  # a link back up
    (data / "train" / "Trouser" / ".ipynb_checkpoints").mkdir()  # hidden inside a class: not read
    shutil.copy(
        next((data / "train" / "Trouser").glob("*.png")), data / "train" / "Trouser" / ".ipynb_checkpoints"
    )
    (data / "train" / "Trouser" / "._0.png").write_bytes(b"\x00\x05\x16\x07")  # macOS's metadata, no image
    train, val, test = load_folder(data)
    assert train.classes == tuple(CLASSES) and len(train) == 180  # each picture once
    empty = data / "test" / "Sneaker" / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png is empty \\(0 bytes\\): remove it"):
        load_folder(data)
    empty.unlink()
    (data / "test" / "Sneaker" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match="gone.png cannot be read .*a broken link\\?\\): remove it"):
        load_folder(data)


def test_a_train_only_folder_with_nothing_held_out_is_one_line_and_leaves_no_folder(
    pictures, tmp_path, capsys
):
    data = tmp_path / "data"
    shutil.copytree(pictures / "train", data / "train")
    line = (
        "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 "
        "--set val_fraction=0 --quiet"
    )
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip()
    assert "no test split and val_fraction=0 holds no images out of the training split" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_gpu_decode_on_pictures_that_are_not_jpegs_is_one_line(pictures, tmp_path, capsys):
    """A decoder's traceback in the first batch before."""
    line = FOLDER_RUN + " --set gpu_decode=true"
    assert main(argv(line, data=pictures, out=tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "gpu_decode=true decodes JPEG files only, and " in err and "set gpu_decode=false" in err
    assert "\n" not in err and not list(tmp_path.rglob("config.yaml"))  # before the run starts


def test_a_run_from_before_validation_folders_were_read_says_why_its_data_read_otherwise(pictures, tmp_path):
    from srblock.keys import make_config
    from srblock.run_folder import RunFolder
    from srblock.splits import load_splits

    data = tmp_path / "data"
    shutil.copytree(pictures / "train", data / "train")
    cfg = make_config("folder", {"data_dir": str(data)})
    run = RunFolder(tmp_path / "run")
    run.check_data(load_splits(cfg), data)  # then: 10% of train/ held out
    shutil.copytree(pictures / "val", data / "validation")  # a folder the run's release ignored
    with pytest.raises(ValueError, match="validation/ is now its validation split, where the run held"):
        run.check_data(load_splits(cfg), data)


def test_a_data_path_that_is_not_the_folder_holding_train_says_what_it_is(pictures, tmp_path):
    """Each said "DIR/train is missing" before, also of a folder that does not exist."""
    (tmp_path / "Cased" / "Train").mkdir(parents=True)
    (tmp_path / "a.png").write_bytes(b"x")
    cases = [
        (tmp_path / "nothing", "nothing does not exist: give the folder that holds train/<class>/<image>"),
        (tmp_path / "a.png", "a.png is a file: give the folder that holds train/<class>/<image>"),
        (tmp_path / "Cased", "Cased holds Train/, not train/: rename it (split names are lower case)"),
        (
            pictures / "train",
            f"train is a train/ folder: give the folder that holds it, {pictures}, as --data",
        ),
    ]
    for root, message in cases:
        with pytest.raises(FileNotFoundError, match=re.escape(message)):
            folder_classes(root)
