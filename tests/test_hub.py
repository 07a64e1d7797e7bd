"""Weights people can share (srblock.hub): a run exported in timm's hub format loads offline in
timm (by name with the file, and as a local-dir model) and in `srblock predict`, giving what the
run gives."""

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch

import srblock
from srblock.cli import main
from srblock.run_model import trained_model

from .helpers import FOLDER_RUN, argv, write_image_folder


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A finished one-epoch SR run on class folders, and its export."""
    root = tmp_path_factory.mktemp("hub")
    data = write_image_folder(root / "data", per_class=(40, 10, 10))
    line = FOLDER_RUN + " --set sr_stage=3 --set sr_memory_blocks=2"
    assert main(argv(line, data=data, out=root / "runs")) == 0
    [run] = [p.parent for p in (root / "runs").rglob("result.json")]
    assert main(["export", str(run), "--hf", str(root / "shared")]) == 0
    return run, root / "shared", data


def test_the_export_holds_weights_and_timms_config(shared, capsys):
    run, out, _ = shared
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "srblock_resnet10s_cifar" and config["num_classes"] == 3
    assert config["label_names"] == ["Sneaker", "T-shirt-top", "Trouser"]
    assert config["model_args"]["sr_stage"] == 3 and config["model_args"]["sr_memory_blocks"] == 2
    assert config["model_args"]["in_chans"] == 3 and config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    assert (out / "model.safetensors").stat().st_size > 100_000
    # the weights' licence is the project's: LICENSE and pyproject say MIT (an export said apache-2.0)
    root = Path(__file__).parents[1]
    assert config["pretrained_cfg"]["license"] == "mit" and (root / "LICENSE").read_text().startswith(
        "MIT License"
    )
    assert 'license = { text = "MIT" }' in (root / "pyproject.toml").read_text()


def test_timm_loads_it_offline_and_computes_what_the_run_computes(shared):
    run, out, _ = shared
    weights = dict(file=str(out / "model.safetensors"))
    expected_model = trained_model(run).model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = expected_model(x)
        by_name = timm.create_model(
            "srblock_resnet10s_cifar",
            pretrained=True,
            pretrained_cfg_overlay=weights,
        ).eval()
        torch.testing.assert_close(by_name(x), expected)
        local = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
        torch.testing.assert_close(local(x), expected)
    assert local.pretrained_cfg["num_classes"] == 3
    # timm's data config prepares images as the run did: the run's mean, std and size, its labels
    exported = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    for model in (local, by_name):
        data = timm.data.resolve_data_config({}, model=model)
        assert data["mean"] == tuple(exported["mean"]) and data["std"] == tuple(exported["std"])
        assert data["input_size"] == (3, 32, 32)
        assert model.pretrained_cfg["label_names"] == ("Sneaker", "T-shirt-top", "Trouser")
    # fine-tuning, as timm does it: another number of classes gets a new head, the rest loads
    tuned = timm.create_model(
        "srblock_resnet10s_cifar", pretrained=True, num_classes=7, pretrained_cfg_overlay=weights
    )
    assert tuned.fc.out_features == 7 and torch.equal(tuned.layer3.sr.memory, expected_model.layer3.sr.memory)
    assert "label_names" not in tuned.pretrained_cfg  # a new head: the export's labels are not its classes
    with pytest.raises(ValueError, match="does not fit srblock_resnet10s_cifar with these arguments"):
        timm.create_model(
            "srblock_resnet10s_cifar", pretrained=True, sr_memory_blocks=4, pretrained_cfg_overlay=weights
        )


def test_predict_reads_the_export_as_it_reads_the_run(shared, capsys):
    run, out, data = shared
    assert main(["predict", str(run), str(data / "test"), "--topk", "2"]) == 0
    from_run = capsys.readouterr().out
    assert main(["predict", str(out), str(data / "test"), "--topk", "2"]) == 0
    assert capsys.readouterr().out == from_run and "Trouser" in from_run


def test_what_cannot_be_exported_is_one_line(shared, tmp_path, capsys):
    run, _, _ = shared
    assert main(["export", str(run)]) == 2
    assert "give --onnx FILE or --hf DIR" in capsys.readouterr().err
    assert main(["export", "--model", "resnet10s_cifar", "--hf", str(tmp_path)]) == 2
    assert "give its run folder" in capsys.readouterr().err


def test_a_broken_export_says_which_file_and_what_to_do(shared, tmp_path, capsys):
    _, out, data = shared
    image = str(next((data / "test" / "Trouser").iterdir()))
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "config.json").write_text('{"architecture": "srblock_resnet10s_cifar",\n')
    assert main(["predict", str(broken), image]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{broken / 'config.json'} is not valid JSON" in err
    config = json.loads((out / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "label_names": "abc"}))
    assert main(["predict", str(broken), image]) == 2
    assert "(its label_names is not a list): export the run again" in capsys.readouterr().err
    shutil.copy(out / "config.json", broken / "config.json")
    (broken / "model.safetensors").unlink()
    assert main(["predict", str(broken), image]) == 2
    assert "holds config.json but no model.safetensors: copy it too" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, message",
    [
        (  # an IndexError in predict before
            lambda c: {**c, "label_names": c["label_names"][:2]},
            "states different numbers of classes (num_classes 3, model_args' num_classes 3, the run's "
            "classes 3, label_names 2)",
        ),
        (  # an empty message before
            lambda c: {**c, "architecture": "srblock_resnet99"},
            "architecture 'srblock_resnet99' is none of srblock's models in timm's registry",
        ),
        (  # a new random head that answered with the old names before
            lambda c: {
                **c,
                "num_classes": 2,
                "model_args": {**c["model_args"], "num_classes": 2},
                "label_names": c["label_names"][:2],
                "srblock": {"config": {**c["srblock"]["config"], "classes": c["label_names"][:2]}},
            },
            "model.safetensors does not fit its config.json (fc.bias is 3, not for 2 classes)",
        ),
        (  # a traceback before
            lambda c: {**c, "model_args": {**c["model_args"], "bogus": 1}},
            "config.json's model_args do not build its model (srblock_resnet10s_cifar() got unexpected "
            "keyword arguments 'bogus')",
        ),
        (  # ignored by predict before, while timm prepared images by it
            lambda c: {**c, "pretrained_cfg": {**c["pretrained_cfg"], "mean": [0.5, 0.5, 0.5]}},
            "pretrained_cfg's mean [0.5, 0.5, 0.5] is not the run's",
        ),
        (
            lambda c: {**c, "pretrained_cfg": {**c["pretrained_cfg"], "input_size": [3, 64, 64]}},
            "pretrained_cfg's input_size [3, 64, 64] is not the run's [3, 32, 32]",
        ),
        (
            lambda c: {**c, "architecture": "srblock_resnet18_cifar"},
            "architecture srblock_resnet18_cifar is not the run's model resnet10s_cifar",
        ),
    ],
)
def test_an_edited_export_is_refused_in_one_line_not_answered_at_random(
    shared, tmp_path, capsys, edit, message
):
    _, out, data = shared
    image = str(next((data / "test" / "Trouser").iterdir()))
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    config = json.loads((out / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps(edit(config)))
    assert main(["predict", str(edited), image]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "export the run again" in err


def test_an_export_replaces_only_files_it_wrote(shared, tmp_path, capsys):
    run, _, _ = shared
    target = tmp_path / "mine"
    target.mkdir()
    (target / "config.json").write_text('{"my": "settings"}')  # the user's, not an export's
    assert main(["export", str(run), "--hf", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{target / 'config.json'} exists and was not written by srblock export" in err
    assert (target / "config.json").read_text() == '{"my": "settings"}' and not (
        target / "model.safetensors"
    ).exists()
    (target / "config.json").unlink()
    (target / "model.safetensors").write_bytes(b"someone else's weights")
    assert main(["export", str(run), "--hf", str(target)]) == 2
    assert (target / "model.safetensors").read_bytes() == b"someone else's weights"
    (target / "model.safetensors").unlink()
    assert main(["export", str(run), "--hf", str(target)]) == 0
    assert main(["export", str(run), "--hf", str(target)]) == 0  # an export's own files: written again


def test_an_export_fine_tunes_with_another_channel_count_as_timm_adapts_its_first_conv(shared, tmp_path):
    """timm's adapt_input_conv on the first conv: the RGB export as a grey model (its first conv
    summed) computes on a grey image what the export computes on that image in three equal
    channels; and weights of one channel, repeated and scaled, do the same the other way. timm's
    data config names the model's channels, by name and as a local-dir model."""
    _, out, _ = shared
    weights = dict(file=str(out / "model.safetensors"))
    rgb = timm.create_model("srblock_resnet10s_cifar", pretrained=True, pretrained_cfg_overlay=weights).eval()
    grey = timm.create_model(
        "srblock_resnet10s_cifar", pretrained=True, in_chans=1, pretrained_cfg_overlay=weights
    ).eval()
    local = timm.create_model(f"local-dir:{out}", pretrained=True, in_chans=1).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = rgb(x.expand(-1, 3, -1, -1))
        torch.testing.assert_close(grey(x), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(local(x), expected, rtol=1e-4, atol=1e-4)
    exported = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    for model in (grey, local):
        data = timm.data.resolve_data_config({}, model=model)
        assert data["input_size"] == (1, 32, 32) and model.in_chans == 1
        assert data["mean"] == pytest.approx((sum(exported["mean"]) / 3,))
    # a grey model's weights as an RGB model's starting point (srblock train --set pretrained=FILE)
    from safetensors.torch import save_file

    from srblock.pretrained import load_pretrained

    save_file(grey.state_dict(), str(tmp_path / "grey.safetensors"))
    again = srblock.create_model("resnet10s_cifar", sr_stage=3, sr_memory_blocks=2, num_classes=3)
    summary = load_pretrained(again.train(), "resnet10s_cifar", str(tmp_path / "grey.safetensors"))
    assert "adapted to 3 input channels: conv1.weight" in summary
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x.expand(-1, 3, -1, -1)), expected, rtol=1e-4, atol=1e-4)
    assert "loaded" in load_pretrained(
        srblock.create_model("resnet10s_cifar", sr_stage=3, sr_memory_blocks=2, num_classes=3),
        "resnet10s_cifar",
        str(out),
    )  # the exported folder itself
