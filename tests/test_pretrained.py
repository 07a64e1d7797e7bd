"""Starting from pretrained weights (a file, or the published ones), and the fine-tuning keys:
AdamW, cosine with warm-up, label smoothing, the SR block's own learning rate."""

from __future__ import annotations

import json
import types
import urllib.error

import pytest
import torch

import srblock
from srblock.cli import main
from srblock.keys import make_config
from srblock.train.engine import make_optimizer
from srblock.train.schedule import classify_factor, cosine_factor, warmup_factor
from srblock.weights_files import read_state_dict

from .helpers import TINY_SEG, argv, write_image_folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("pictures"), per_class=(40, 10, 10))


def source_model(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(1)
    return srblock.create_model("timm:resnet10t", num_classes=num_classes).eval()


def test_a_wrapped_prefixed_state_dict_starts_the_sr_model_exactly_as_the_source(tmp_path):
    source = source_model()
    path = tmp_path / "weights.pth"
    # as the PyTorch ImageNet example saves: a tensor of its best accuracy beside the weights
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "best_acc1": torch.tensor(71.2), "epoch": 90}, path)
    model = srblock.create_model(
        "timm:resnet10t", num_classes=3, pretrained=str(path), sr_stage=3, input_size=(3, 32, 32)
    ).eval()
    assert srblock.sr_blocks(model)  # the block went in after the weights
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    assert model.pretrained_summary.startswith(f"loaded {len(source.state_dict())} tensors from {path}")
    assert "0 missing; 0 unused" in model.pretrained_summary


def test_another_number_of_classes_replaces_the_head_and_says_so(tmp_path):
    path = tmp_path / "weights.safetensors"
    from safetensors.torch import save_file

    save_file(source_model(num_classes=10).state_dict(), str(path))
    model = srblock.create_model("timm:resnet10t", num_classes=3, pretrained=str(path))
    summary = model.pretrained_summary
    assert (
        "(100% of the weights outside the head); head left new (other shape): fc.weight, fc.bias" in summary
    )
    assert "0 missing" in summary  # the head is new, not missing
    assert torch.equal(model.conv1[0].weight, source_model(10).conv1[0].weight)


def test_rgb_weights_into_a_grey_model_sum_the_first_convolution(tmp_path):
    path = tmp_path / "w.pth"
    source = srblock.create_model("resnet10s_cifar", num_classes=10)
    torch.save(source.state_dict(), path)
    grey = srblock.create_model("resnet10s_cifar", num_classes=10, in_chans=1, pretrained=str(path))
    assert torch.allclose(grey.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert "adapted to 1 input channels: conv1.weight" in grey.pretrained_summary


def test_weights_of_another_architecture_are_refused_unless_partial(tmp_path):
    import torchvision

    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)  # the names of ResNet18 and more
    with pytest.raises(ValueError) as refused:
        srblock.create_model("tv:resnet18", pretrained=str(path))
    message = str(refused.value)
    assert f"{path} is from another architecture: 23 tensors outside the head have other shapes" in message
    assert "layer1.0.conv1.weight: (64, 64, 1, 1) in the file, (64, 64, 3, 3) here" in message
    assert "set pretrained_partial=true to load only the 77 of 100 that fit" in message
    model = srblock.create_model("tv:resnet18", pretrained=str(path), pretrained_partial=True)
    assert "23 of another shape left at init: layer1.0.conv1.weight" in model.pretrained_summary
    # a segmentation backbone: the same rule, the backbone has no head
    source = srblock.create_model("resnet18_cifar", num_classes=10).state_dict()
    torch.save(source, path)
    with pytest.raises(
        ValueError, match="is from another architecture: .* outside the head have other shapes"
    ):
        srblock.create_model("fcn_resnet10s", in_chans=3, pretrained_backbone=str(path))


def test_a_file_that_fills_few_of_the_weights_is_refused_unless_partial(tmp_path):
    model = srblock.create_model("resnet10s_cifar", num_classes=10)
    stem = {k: v for k, v in model.state_dict().items() if k.startswith(("conv1.", "bn1."))}
    path = tmp_path / "stem.pth"
    torch.save(stem, path)
    with pytest.raises(ValueError, match=r"fills only 5 of the model's \d+ weights outside its head \(\d+%"):
        srblock.create_model("resnet10s_cifar", num_classes=10, pretrained=str(path))
    partial = srblock.create_model(
        "resnet10s_cifar", num_classes=10, pretrained=str(path), pretrained_partial=True
    )
    assert torch.equal(partial.conv1.weight, model.conv1.weight)
    assert partial.pretrained_summary.startswith(f"loaded 6 tensors from {path} (")


def test_bad_weight_files_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights .*nothere.pth not found"):
        srblock.create_model("resnet10s_cifar", pretrained=str(tmp_path / "nothere.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="cannot be read .*not a weights file"):
        read_state_dict(corrupt)
    from safetensors.torch import save_file

    whole = tmp_path / "whole.safetensors"
    save_file(srblock.create_model("resnet10s_cifar").state_dict(), str(whole))
    saved = tmp_path / "whole.pth"
    torch.save(srblock.create_model("resnet10s_cifar").state_dict(), saved)
    for name, body, reason in (
        ("notes.pth", b"learning rate 0.1, 200 epochs\n", "not a weights file: text or another format"),
        (
            "notes.safetensors",
            b"learning rate 0.1, 200 epochs\n",
            "not a safetensors file: Error while deserializing header",
        ),
        (
            "cut.safetensors",
            whole.read_bytes()[: whole.stat().st_size // 2],
            "truncated or damaged: Error while deserializing header: incomplete",
        ),
        (
            "cut.pth",
            saved.read_bytes()[: saved.stat().st_size // 2],
            "truncated or damaged: not a complete zip archive",
        ),
    ):
        (tmp_path / name).write_bytes(body)
        with pytest.raises(ValueError) as err:
            srblock.create_model("resnet10s_cifar", pretrained=str(tmp_path / name))
        assert str(err.value).startswith(f"pretrained weights {tmp_path / name} cannot be read ({reason}")
        assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), foreign)
    with pytest.raises(ValueError, match="holds no tensor of this model .*'weight'.*another network"):
        srblock.create_model("resnet10s_cifar", pretrained=str(foreign))
    with pytest.raises(
        ValueError, match="resnet10s_cifar has no published weights: pass --set pretrained=PATH"
    ):
        srblock.create_model("resnet10s_cifar", pretrained=True)


def test_published_weights_offline_are_one_line_errors_that_say_where_to_put_them(monkeypatch):
    monkeypatch.setattr("srblock.pretrained._reachable", lambda host, timeout=3.0: False)
    with pytest.raises(ValueError) as timm_error:
        srblock.create_model("timm:resnet10t", pretrained=True)
    assert "timm:resnet10t's pretrained weights could not be fetched" in str(timm_error.value)
    assert "huggingface.co/timm/resnet10t" in str(timm_error.value) and "\n" not in str(timm_error.value)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ValueError) as tv_error:
        srblock.create_model("tv:resnet18", num_classes=3, pretrained=True)
    message = str(tv_error.value)
    assert "tv:resnet18's pretrained weights could not be downloaded (URLError): place https://" in message
    assert "/checkpoints/resnet18-" in message and "--set pretrained=PATH" in message


def test_a_corrupt_cached_download_is_named_not_called_missing(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr("srblock.pretrained._reachable", lambda host, timeout=3.0: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    cached = repo / "snapshots" / "abc123" / "model.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"<html>proxy error</html>")  # what a broken download leaves
    with pytest.raises(ValueError) as timm_error:
        srblock.create_model("timm:resnet10t", pretrained=True)
    assert str(timm_error.value).startswith(f"timm:resnet10t's cached weights {cached} cannot be read (")
    assert "delete the file to fetch it again" in str(timm_error.value)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    import torchvision

    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    cached = tmp_path / "torch" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"<html>proxy error</html>")
    with pytest.raises(ValueError) as tv_error:
        srblock.create_model("tv:resnet18", num_classes=3, pretrained=True)
    assert str(tv_error.value).startswith(
        f"tv:resnet18's cached weights {cached} cannot be read (not a weights"
    )


def test_schedules_warm_up_then_decay():
    assert [warmup_factor(e, 3) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert cosine_factor(2, 12, warmup=2) == 1.0 and cosine_factor(7, 12, warmup=2) == pytest.approx(0.5)
    assert cosine_factor(12, 12, warmup=2) == pytest.approx(0.0)
    step = dict(epochs=10, milestones=[5], gamma=0.1, warmup=1)
    assert [classify_factor(e, schedule="step", **step) for e in (0, 1, 5)] == [0.5, 1.0, pytest.approx(0.1)]


def test_adamw_with_the_sr_block_at_its_own_learning_rate():
    cfg = make_config(
        "cifar10",
        {"model": "resnet10s_cifar", "sr_stage": 3, "optimizer": "adamw", "lr": 1e-3, "sr_lr_mult": 10.0},
    )
    model = srblock.create_model("resnet10s_cifar", sr_stage=3)
    optimizer = make_optimizer(types.SimpleNamespace(device=torch.device("cpu")), cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW)
    sr_params = {id(p) for p in srblock.sr_blocks(model)[0][1].parameters()}
    rest, sr, memory = optimizer.param_groups  # the memory in a group of its own (sr_memory_lr_mult)
    assert rest["lr"] == 1e-3 and sr["lr"] == pytest.approx(1e-2) and memory["lr"] == pytest.approx(1e-2)
    in_sr = {id(p) for p in sr["params"] + memory["params"]}
    assert in_sr == sr_params and not sr_params & {id(p) for p in rest["params"]}
    plain = make_optimizer(types.SimpleNamespace(device=torch.device("cpu")), make_config("cifar10"), model)
    assert isinstance(plain, torch.optim.SGD) and len(plain.param_groups) == 1


@pytest.mark.slow
def test_finetune_recipe_from_a_local_file_end_to_end(pictures, tmp_path, capsys):
    weights = tmp_path / "backbone.pth"
    torch.save(source_model(num_classes=1000).state_dict(), weights)
    line = (
        "train finetune --data {data} --out {out} --set model=timm:resnet10t --set pretrained={weights} "
        "--set sr_stage=3 --set image_size=32 --set epochs=2 --set batch_size=16 --set num_workers=0 --quiet"
    )
    assert main(argv(line, data=pictures, out=tmp_path / "runs", weights=weights)) == 0
    out = capsys.readouterr().out
    assert (
        f"from {weights} (100% of the weights outside the head); head left new (other shape): fc.weight"
        in out
    )
    [folder] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    result = json.loads((folder / "result.json").read_text())
    config = result["config"]
    assert (
        config["optimizer"] == "adamw"
        and config["schedule"] == "cosine"
        and config["pretrained"] == str(weights)
    )
    assert config["label_smoothing"] == 0.1 and config["sr_lr_mult"] == 10.0
    lrs = [float(row.split(",")[1]) for row in (folder / "metrics.csv").read_text().splitlines()[1:]]
    # a warm-up of 2 in a run of 2 is cut to 1, so the last epoch starts at the full lr
    assert lrs == pytest.approx([2e-4 / 2, 2e-4])


def test_a_segmentation_model_starts_from_a_backbone_file(cityscapes, tmp_path, capsys):
    torch.manual_seed(3)
    source = srblock.create_model("fcn_resnet10s", in_chans=3, num_classes=19)
    path = tmp_path / "backbone.pth"
    # an ImageNet-style checkpoint: the backbone's tensors, and a classifier the backbone lacks
    torch.save({**source.backbone.state_dict(), "fc.weight": torch.zeros(1000, 64)}, path)
    model = srblock.create_model(
        "fcn_resnet10s", in_chans=3, num_classes=19, sr_stage=2, pretrained_backbone=str(path)
    )
    assert model.pretrained_summary.startswith(
        f"backbone: loaded {len(source.backbone.state_dict())} tensors"
    )
    assert model.pretrained_summary.endswith("0 missing; 1 unused (fc.weight)")
    mine = model.backbone.state_dict()
    assert all(torch.equal(v, mine[k]) for k, v in source.backbone.state_dict().items())
    line = (
        "train cityscapes --data {data} --out {out} --set model=fcn_resnet10s --set pretrained_backbone={w}"
    )
    assert main(argv(line, data=cityscapes, out=tmp_path / "runs", w=path) + TINY_SEG) == 0
    assert (
        f"backbone: loaded {len(source.backbone.state_dict())} tensors from {path}" in capsys.readouterr().out
    )
    with pytest.raises(ValueError, match="resnet10s_cifar has no backbone to load pretrained_backbone into"):
        srblock.create_model("resnet10s_cifar", pretrained_backbone=str(path))


def test_weights_that_only_look_like_this_model_s_are_named(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    deeper = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), deeper)  # every ResNet18 name, and more
    with pytest.raises(
        ValueError, match=r"holds 96 of its 218 tensors under names this model lacks .* larger network"
    ):
        srblock.create_model("tv:resnet18", pretrained=str(deeper))
    whole = tmp_path / "whole.pth"
    torch.save(torchvision.models.resnet18(), whole)
    with pytest.raises(
        ValueError, match=r"a pickled model or other objects, not a state dict: save model.state_dict"
    ):
        srblock.create_model("tv:resnet18", pretrained=str(whole))
    named = tmp_path / "weights.PTH"  # safetensors under another name: read by its content
    save_file(torchvision.models.resnet18().state_dict(), str(named))
    assert srblock.create_model("tv:resnet18", pretrained=str(named)).pretrained_summary.startswith(
        "loaded 122"
    )
    head = tmp_path / "head.pth"
    torch.save({"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, head)
    with pytest.raises(
        ValueError, match=r"no tensor of this model that fits \(fc.weight is \(10, 512\) there"
    ):
        srblock.create_model("tv:resnet18", num_classes=3, pretrained=str(head))
    # a backbone has no head: its last layer of another shape is another architecture, not a new head
    backbone = srblock.create_model("fcn_resnet10s", in_chans=3, num_classes=19).backbone.state_dict()
    last = [k for k in backbone if k.endswith("weight")][-1]
    backbone[last] = torch.zeros(3, *backbone[last].shape[1:])
    torch.save(backbone, tmp_path / "backbone.pth")
    with pytest.raises(ValueError, match=f"another architecture: 1 tensors outside the head .*{last}"):
        srblock.create_model("fcn_resnet10s", in_chans=3, pretrained_backbone=str(tmp_path / "backbone.pth"))


def test_the_first_convolution_is_the_one_the_state_dict_holds():
    """timm's pretrained_cfg names the first conv as the model names it; a wrapper that renames it
    (features_only: stem.0 becomes stem_0) falls back to the first Conv2d the weights hold."""
    from srblock.pretrained import first_conv_key

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    assert first_conv_key(model) == "0.weight"
    model.pretrained_cfg = {"first_conv": "stem.0"}  # not in this model's state dict
    assert first_conv_key(model) == "0.weight"
    model.pretrained_cfg = {"first_conv": "2"}
    assert first_conv_key(model) == "2.weight"
    assert first_conv_key(torch.nn.Linear(3, 3)) is None
