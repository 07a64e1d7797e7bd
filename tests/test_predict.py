"""`srblock predict`: a run on new image files, prepared exactly as its evaluation prepared its own."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch
from torchvision.io import decode_png, read_file

from srblock.cli import main
from srblock.keys import make_config
from srblock.predict import Predictor, image_files, run_classes

from .helpers import FOLDER_RUN, argv, write_image_folder

CLASSES = ["Sneaker", "T-shirt-top", "Trouser"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A finished one-epoch run on real Fashion-MNIST pictures in class folders."""
    root = tmp_path_factory.mktemp("predict")
    data = write_image_folder(root / "data", per_class=(60, 15, 15))
    line = FOLDER_RUN
    assert main(argv(line, data=data, out=root / "runs")) == 0
    [folder] = [p.parent for p in (root / "runs").rglob("result.json")]
    return folder, data


def test_predictions_on_the_test_folder_score_what_the_run_scored(folder_run, capsys):
    folder, data = folder_run
    assert main(["predict", str(folder), str(data / "test")]) == 0
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(f"| {data}")]
    assert len(table) == 45
    right = 0
    for line in table:
        path, rank, name, probability = (cell.strip() for cell in line.strip("|").split("|"))
        assert rank == "1" and name in CLASSES and 0 < float(probability) <= 1
        right += name == path.split("/")[-2]
    result = json.loads((folder / "result.json").read_text())
    assert 100 * right / 45 == pytest.approx(result["test_acc"])  # the same inputs as the evaluation's


def test_topk_and_csv(folder_run, tmp_path, capsys):
    folder, data = folder_run
    image = next((data / "test" / "Trouser").iterdir())
    assert main(["predict", str(folder), str(image), "--topk", "3", "--csv", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and sorted(r["class"] for r in rows) == CLASSES
    probabilities = [float(r["probability"]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(1)
    assert "| rank |" in capsys.readouterr().out


def test_segmentation_runs_write_a_mask_and_an_overlay_per_image(seg_run, cityscapes, tmp_path, capsys):
    images = image_files([cityscapes / "leftImg8bit" / "val"])
    assert (
        main(["predict", str(seg_run), str(cityscapes / "leftImg8bit" / "val"), "--masks", str(tmp_path)])
        == 0
    )
    for image in images:
        mask = decode_png(read_file(str(tmp_path / f"{image.stem}_mask.png")))
        overlay = decode_png(read_file(str(tmp_path / f"{image.stem}_overlay.png")))
        source = decode_png(read_file(str(image)))
        assert mask.shape == (1, *source.shape[1:]) and int(mask.max()) < 19
        assert overlay.shape == (3, *source.shape[1:])
    predictor = Predictor.load(seg_run)
    x = predictor.prepare(images[0])[1]
    with torch.no_grad():
        expected = predictor.model(x[None])["out"].argmax(1)[0]
    stored = decode_png(read_file(str(tmp_path / f"{images[0].stem}_mask.png")))[0]
    assert torch.equal(stored.long(), expected)
    assert str(tmp_path / f"{images[0].stem}_overlay.png") in capsys.readouterr().out


def test_bad_input_is_one_line(folder_run, tmp_path, capsys):
    folder, data = folder_run
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no picture")
    zero = tmp_path / "zero.png"  # a traceback before
    zero.write_bytes(b"")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder, unfinished)
    (unfinished / "best.ckpt").unlink()
    (unfinished / "result.json").unlink()
    cases = [
        ([str(folder), str(empty)], f"{empty} holds no images"),
        ([str(folder), str(tmp_path / "nothere.png")], "nothere.png does not exist"),
        ([str(folder), str(broken)], f"{broken} cannot be decoded as an image"),
        ([str(folder), str(zero)], f"{zero} cannot be read as an image (Expected a non empty file)"),
        (
            [str(folder), str(broken), "--masks", str(tmp_path)],
            "--masks does nothing for a classification run",
        ),
        ([str(folder), str(broken), "--topk", "4"], "--topk 4: the run has 3 classes; give at most that"),
        ([str(unfinished), str(data / "test")], "has no best.ckpt yet: finish the run first"),
        ([str(tmp_path), str(data / "test")], "is not a run folder"),
    ]
    for args, message in cases:
        assert main(["predict", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


@pytest.mark.slow
def test_predict_needs_no_training_stack():
    code = (
        "import sys; import srblock.cli.predict, srblock.predict; "
        "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lightning.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_two_images_of_one_name_would_overwrite_their_masks(seg_run, cityscapes, tmp_path, capsys):
    [image, *_] = image_files([cityscapes / "leftImg8bit" / "val"])
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(image, tmp_path / folder / image.name)
    assert (
        main(
            [
                "predict",
                str(seg_run),
                str(tmp_path / "a"),
                str(tmp_path / "b"),
                "--masks",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert f"two images are named {image.stem!r}" in capsys.readouterr().err and not (tmp_path / "m").exists()
    assert main(["predict", str(seg_run), str(image), "--topk", "3", "--masks", str(tmp_path / "m")]) == 2
    assert "--topk does nothing for a segmentation run" in capsys.readouterr().err


def test_a_csv_named_like_an_image_and_an_unfinished_run_are_said(folder_run, tmp_path, capsys):
    folder, data = folder_run
    image = next((data / "test" / "Trouser").iterdir())
    before = image.read_bytes()
    assert main(["predict", str(folder), "--csv", str(image), str(data / "test" / "Sneaker")]) == 2
    assert "--csv takes a .csv file to write" in capsys.readouterr().err and image.read_bytes() == before
    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder, unfinished)
    (unfinished / "result.json").unlink()
    assert main(["predict", str(unfinished), str(image)]) == 0
    assert "is not finished (no result.json): its best checkpoint so far predicts" in capsys.readouterr().err
    assert main(["export", str(unfinished), "--onnx", str(tmp_path / "u.onnx")]) == 0
    assert "its best checkpoint so far is exported" in capsys.readouterr().err
    assert main(["export", str(folder), "--onnx", str(tmp_path / "f.onnx")]) == 0
    assert "not finished" not in capsys.readouterr().err


def test_an_unfinished_runs_class_names_come_from_its_data_json(tmp_path):
    """A run stopped before result.json still names its classes: data.json records them at the start."""
    cfg = make_config("fashion_mnist")
    names = ["T-shirt/top", "Trouser", *(f"c{k}" for k in range(8))]
    (tmp_path / "data.json").write_text(json.dumps({"classes": names, "train": {"images": 10}}))
    assert run_classes(tmp_path, cfg) == tuple(names)
    (tmp_path / "result.json").write_text(json.dumps({"classes": ["a"] * 10}))  # a finished run's
    assert run_classes(tmp_path, cfg) == ("a",) * 10
    for name in ("result.json", "data.json"):
        (tmp_path / name).unlink()
    assert run_classes(tmp_path, cfg) == tuple(str(k) for k in range(10))  # from before data.json


def test_a_16_bit_png_is_read_on_the_scale_of_an_8_bit_one(folder_run, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    # a run on data held in memory (Fashion-MNIST): its images are prepared by predict itself
    line = "train fashion_mnist --out {out} --set epochs=1 --set limit_train=512 --set limit_test=64 --quiet"
    assert main(argv(line, out=tmp_path / "runs")) == 0
    [run] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    _, data = folder_run
    grey = np.asarray(Image.open(next((data / "test" / "Trouser").iterdir())).convert("L").resize((28, 28)))
    Image.fromarray(grey).save(tmp_path / "8bit.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16bit.png")  # the same picture, 16 bits
    assert Image.open(tmp_path / "16bit.png").mode == "I;16"
    images = [str(tmp_path / "8bit.png"), str(tmp_path / "16bit.png")]
    assert main(["predict", str(run), *images, "--topk", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [ln.split("|")[2:5] for ln in out if ln.startswith(f"| {tmp_path}") and ".png" in ln]
    eight, sixteen = rows[:3], rows[3:]
    assert [r[1] for r in eight] == [r[1] for r in sixteen]  # the same classes in the same order
    assert all(abs(float(a[2]) - float(b[2])) <= 0.02 for a, b in zip(eight, sixteen, strict=True))


def test_no_output_file_replaces_one_the_user_wrote(folder_run, tmp_path, capsys):
    """--csv, export's --onnx and report's page replaced any file at their path."""
    folder, data = folder_run
    image = str(next((data / "test" / "Trouser").iterdir()))
    mine = {name: tmp_path / name for name in ("keep.csv", "user.onnx", "notes.html")}
    for path in mine.values():
        path.write_text("precious\n")
    commands = [
        ["predict", str(folder), image, "--csv", str(mine["keep.csv"])],
        ["export", str(folder), "--onnx", str(mine["user.onnx"])],
        ["report", str(folder), "--html", str(mine["notes.html"])],
    ]
    for path, words in zip(mine.values(), commands):
        assert main(words) == 2
        err = capsys.readouterr().err
        assert f"{path} exists and was not written by " in err and err.count("\n") == 1, err
        assert path.read_text() == "precious\n"
    # a file the command wrote itself is written anew
    fresh = tmp_path / "fresh.csv"
    assert main(["predict", str(folder), image, "--csv", str(fresh)]) == 0
    assert main(["predict", str(folder), image, "--topk", "2", "--csv", str(fresh)]) == 0
    assert len(fresh.read_text().splitlines()) == 1 + 2
