"""`srblock.fit`: the engine on a model and data sets given in Python (real Fashion-MNIST images)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch.utils.data import Dataset

import srblock
from srblock.data import load_dataset
from srblock.run_model import trained_model


class Pictures(Dataset):
    """A user's data set: float images and labels, with class names."""

    def __init__(self, start: int, count: int) -> None:
        _, train, _ = load_dataset("fashion_mnist", None)
        self.images = train.images[start : start + count].float() / 255.0
        self.labels = train.labels[start : start + count]
        self.classes = list(train.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


@pytest.mark.slow
def test_fit_trains_a_python_model_on_python_data_sets_and_resumes_or_skips(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)
    train, val = Pictures(0, 512), Pictures(512, 128)
    kwargs = dict(recipe="finetune", out=tmp_path, sr_stage=3, sr_temperature=0.5, epochs=2, batch_size=64)
    kwargs.update(num_workers=0, quiet=True)
    run = srblock.fit(model, train, val, **kwargs)
    assert run.folder == tmp_path / "finetune" / "python_ResNet-sr3p4h8-T0.5-srlr10.0" / "seed0"
    result = json.loads((run.folder / "result.json").read_text())
    assert result == run.result | {"wall_time_s": result["wall_time_s"]} and result["tested_split"] == "val"
    assert result["classes"][0] == "T-shirt/top" and result["sr_params"] > 0
    [(name, block)] = srblock.sr_blocks(run.model)
    assert name == "layer3.sr" and block.temperature == 0.5
    best = torch.load(run.folder / "best.ckpt", weights_only=True)["model"]
    assert all(torch.equal(v.cpu(), best[k]) for k, v in run.model.state_dict().items())
    # the same call again: the run is finished, so its best weights come back without training
    again = srblock.fit(
        srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1), train, val, **kwargs
    )
    assert again.result["test_acc"] == result["test_acc"]
    assert all(torch.equal(v, best[k]) for k, v in again.model.state_dict().items())
    with pytest.raises(ValueError, match="a model given to srblock.fit in Python: build it again"):
        trained_model(run.folder)


def test_fit_needs_classes_and_an_evaluation_set(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)
    bare = torch.utils.data.TensorDataset(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="needs val_set"):
        srblock.fit(model, bare, out=tmp_path)
    with pytest.raises(ValueError, match="needs the class names: pass classes"):
        srblock.fit(model, bare, bare, out=tmp_path)
    with pytest.raises(ValueError, match="unknown key 'epoch'"):
        srblock.fit(model, bare, bare, out=tmp_path, num_classes=10, epoch=3)


@pytest.mark.slow
def test_a_fit_run_is_analysed_with_the_data_it_was_given(tmp_path, capsys):
    from srblock.analysis import run_analysis
    from srblock.cli import main

    model = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)
    train, val = Pictures(0, 256), Pictures(256, 100)
    run = srblock.fit(model, train, val, recipe="finetune", out=tmp_path, sr_stage=3, epochs=1,
                      batch_size=64, num_workers=0, quiet=True)  # fmt: skip
    assert main(["analyze", str(run.folder)]) == 2  # from the command line the data are unknown
    assert "run_analysis(folder, model=run.model" in capsys.readouterr().err
    paths = run_analysis(
        run.folder, ["Trouser", "9"], per_class=5, model=run.model, splits={"val": val, "test": val}
    )
    weights = json.loads(paths["weights.json"].read_text())
    assert weights["classes"] == ["Trouser", "Ankle boot"] and paths["ablation.png"].stat().st_size > 0
    ablation = json.loads(paths["ablation.json"].read_text())
    assert ablation["with_sr"] == pytest.approx(run.result["test_acc"], abs=1e-4)


def test_what_fit_cannot_train_is_one_line(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)
    train, val = Pictures(0, 64), Pictures(64, 16)
    kwargs = dict(out=tmp_path, epochs=1, quiet=True)
    with pytest.raises(
        TypeError, match="takes the model itself, or a function that builds it, got .resnet18."
    ):
        srblock.fit("resnet18", train, val, **kwargs)
    with pytest.raises(ValueError, match="val_set is empty"):
        srblock.fit(model, train, Pictures(0, 0), **kwargs)

    class Items(torch.utils.data.Dataset):  # the pictures as the user's transform left them
        def __init__(self, change) -> None:
            self.change = change

        def __len__(self) -> int:
            return len(train)

        def __getitem__(self, i: int):
            image, label = train[i]
            return self.change(image), label

    uint8 = Items(lambda x: (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="the images are torch.uint8, not float: add"):
        srblock.fit(model, uint8, val, classes=train.classes, **kwargs)
    with pytest.raises(ValueError, match=r"the image a C x H x W tensor, got \(28, 28\)"):
        srblock.fit(model, Items(lambda x: x[0]), val, classes=train.classes, **kwargs)
    with pytest.raises(
        ValueError, match="the model has 10 outputs for 3 classes: build it with num_classes=3"
    ):
        srblock.fit(model, train, val, classes=["a", "b", "c"], **kwargs)
    with pytest.raises(ValueError, match="srblock.fit: sr_lr_mult=10 does nothing without an SR block"):
        srblock.fit(model, train, val, classes=train.classes, sr_lr_mult=10, **kwargs)
    with pytest.raises(ValueError, match=r"cannot take train_set's images \(3 x 28 x 28: .*in_chans=3"):
        srblock.fit(model, Items(lambda x: x.expand(3, -1, -1)), val, classes=train.classes, **kwargs)
    shifted = Pictures(0, 64)
    shifted.labels = shifted.labels + 5
    with pytest.raises(ValueError, match=r"train_set holds class index 1\d, outside 0..9 for 10 classes"):
        srblock.fit(model, shifted, val, **kwargs)
    (tmp_path / "file.txt").write_text("")
    with pytest.raises(ValueError, match="out=.*file.txt' is a file: give a folder"):
        srblock.fit(model, train, val, **{**kwargs, "out": tmp_path / "file.txt"})
    held = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1, sr_stage=3, sr_memory_blocks=4)
    with pytest.raises(
        ValueError, match=r"sr_stage=3 adds an SR block, but the model already holds one \(layer3.sr\)"
    ):
        srblock.fit(held, train, val, sr_stage=3, **kwargs)
    with pytest.raises(
        ValueError, match=r"sr_memory_blocks=7 does nothing: .* \(layer3.sr\) were built with 4"
    ):
        srblock.fit(held, train, val, sr_memory_blocks=7, **kwargs)
    assert not list(tmp_path.rglob("config.yaml"))  # nothing started


def test_a_model_that_holds_an_sr_block_is_recorded_as_it_is():
    from srblock.fitting import _given_spec, _held_blocks

    held = srblock.create_model(
        "resnet10s_cifar", num_classes=10, sr_stage=2, sr_memory_blocks=3, sr_hidden=5
    )
    values = _held_blocks(held, {"sr_lr_mult": 10.0, "sr_hidden": 5})  # training keys and agreeing ones pass
    assert (values["sr_stage"], values["sr_memory_blocks"], values["sr_hidden"]) == (2, 3, 5)
    assert _held_blocks(srblock.create_model("resnet10s_cifar", num_classes=10), {"sr_hidden": 5}) == {}
    # an SRSpec given to fit sets what it changes from the paper's, not its defaults
    assert _held_blocks(held, _given_spec(srblock.SRSpec(lr_mult=10.0)))["sr_memory_blocks"] == 3
    srblock.add_sr(held, 4, srblock.SRSpec(memory_blocks=2), input_size=(3, 32, 32))
    assert _held_blocks(held, {}) == {"sr_stage": None}  # two blocks: fit's `name` tells the runs apart
    with pytest.raises(ValueError, match=r"sr_memory_blocks=3 does nothing: .* were built with 2, 3"):
        _held_blocks(held, {"sr_memory_blocks": 3})


def test_labels_are_checked_where_the_data_set_lists_them_and_item_by_item_elsewhere():
    from srblock.fit_inputs import check_labels as _check_labels

    class Listed(list):
        targets = [0, 1, 7]
        target_transform = None

    _check_labels(Listed([(None, 0)]), "train_set", 8)
    with pytest.raises(ValueError, match="train_set holds class index 7, outside 0..6 for 7 classes"):
        _check_labels(Listed([(None, 0)]), "train_set", 7)
    coarse = Listed([(None, 2)])
    coarse.target_transform = lambda k: k // 4  # the listed labels are not what the items give
    _check_labels(coarse, "train_set", 3)
    with pytest.raises(
        ValueError, match="train_set's items must be \\(image, class index\\), got a str class"
    ):
        _check_labels([(None, "cat")], "train_set", 3)
    with pytest.raises(ValueError, match="class index -1, outside 0..2 .* or map the labels to 0..N-1"):
        _check_labels([(None, -1)], "train_set", 3)
    # float labels crashed the first step (after the run's folder was written): refused before
    for target in (1.0, torch.tensor(1.0), True):
        with pytest.raises(ValueError, match="give whole numbers 0..2 \\(int, or an integer tensor"):
            _check_labels([(None, target)], "train_set", 3)
    _check_labels([(None, torch.tensor(2))], "train_set", 3)  # an integer tensor is a class index


def test_keys_fit_decides_itself_are_refused_not_overwritten(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=2, in_chans=1)
    images = [(torch.zeros(1, 8, 8), k % 2) for k in range(4)]
    for key, value, message in (
        ("pretrained", "weights.pth", "load weights into the model before"),
        ("image_size", 64, "it is read from your images"),
        ("dataset", "cifar100", "your data sets .* decide it"),
    ):
        with pytest.raises(ValueError, match=f"srblock.fit: {key}=.* does nothing here: {message}"):
            srblock.fit(model, images, images, out=tmp_path, **{key: value})
    assert not list(tmp_path.iterdir())  # nothing started


@pytest.mark.slow
def test_a_model_built_with_its_block_trains_under_its_blocks_name(tmp_path):
    from srblock.run_folder import RunFolder

    held = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1, sr_stage=3, sr_memory_blocks=2)
    run = srblock.fit(held, Pictures(0, 64), Pictures(64, 16), out=tmp_path, epochs=1, quiet=True, name="r10")
    cfg = RunFolder(run.folder).config()
    assert run.folder.parent.name.startswith("python_r10-sr3p2h8") and (
        cfg.sr_stage,
        cfg.sr.memory_blocks,
    ) == (3, 2)
    assert run.result["sr_params"] > 0


@pytest.mark.slow
def test_a_model_built_by_fit_under_the_seed_repeats_bit_for_bit_and_other_data_are_refused(tmp_path):
    """The same call in three fresh processes gave three different weights (the model's initial
    weights were drawn before fit set the seed), and a second call with other data returned the
    first run's result without training."""
    train, val = Pictures(0, 64), Pictures(64, 32)
    kwargs = dict(recipe="finetune", epochs=1, batch_size=32, num_workers=0, quiet=True)

    def build():
        return srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)

    first = srblock.fit(build, train, val, out=tmp_path / "a", **kwargs)
    torch.randn(1000)  # the caller's random stream moves on between the calls
    second = srblock.fit(build, train, val, out=tmp_path / "b", **kwargs)
    a, b = (torch.load(r.folder / "last.ckpt", weights_only=True)["model"] for r in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a) and first.result["test_acc"] == second.result["test_acc"]
    other = Pictures(1000, 64)  # as many pictures, other ones
    with pytest.raises(ValueError, match="the data are not the ones .* trained on \\(train: as many items"):
        srblock.fit(build, other, val, out=tmp_path / "a", **kwargs)
    assert srblock.fit(build, train, val, out=tmp_path / "a", **kwargs).result == first.result  # the same
    with pytest.warns(UserWarning, match="the model was built before the call, so it starts from whatever"):
        srblock.fit(build(), train, val, out=tmp_path / "c", **kwargs)  # a model built outside the seed


def test_what_fit_is_given_is_checked_before_anything_starts(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1)
    train, val = Pictures(0, 64), Pictures(64, 16)
    kwargs = dict(out=tmp_path, epochs=1, quiet=True)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([])

    triples = [(image, label, "extra") for image, label in (train[0], train[1])]
    grey3 = [(image.expand(3, -1, -1), label) for image, label in (val[0], val[1])]
    # raw errors before: "has no len()", "too many values to unpack", a channel error after an epoch
    cases = [
        (dict(devices=2), "trains in this process, on one device, not devices=2"),
        (dict(devices=[0, 1]), "trains in this process, on one device, not devices=[0, 1]"),
        (dict(train_set=Stream()), "train_set (Stream) is not a map-style data set"),
        (dict(train_set=triples), "train_set's items must be (image, class index) pairs, got a 3-tuple"),
        (dict(val_set=grey3), "the model cannot take val_set's images (3 x 28 x 28"),
        (
            dict(classes=["a", "b", "a"] + [str(k) for k in range(7)]),
            "the class names hold 'a' more than once",
        ),
    ]
    for change, message in cases:
        given = {"train_set": train, "val_set": val, **kwargs, **change}
        with pytest.raises(ValueError, match=re.escape(message)):
            srblock.fit(model, **given)
    with pytest.raises(TypeError, match="the function given as the model returned None, not a model"):
        srblock.fit(lambda: None, train, val, **kwargs)

    class Streamed(torch.utils.data.IterableDataset):  # with a length: Dataset's __getitem__ raises
        def __iter__(self):
            return iter([])

        def __len__(self) -> int:
            return 3

    with pytest.raises(ValueError, match="train_set \\(Streamed\\) is not a map-style data set"):
        srblock.fit(model, Streamed(), val, **kwargs)
    assert not list(tmp_path.rglob("config.yaml")) and not srblock.sr_blocks(model)  # nothing started
