"""ONNX export of models with SR blocks (zoo, torchvision, timm, segmentation), checked with onnxruntime."""

import json
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

import srblock
from srblock.cli import main
from srblock.export import export_onnx, onnx_max_diff

from .helpers import argv, fill_memory

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "build,input_size",
    [
        (lambda: srblock.create_model("resnet10s_cifar", num_classes=10, sr_stage=3), (3, 32, 32)),
        (
            lambda: srblock.add_sr(torchvision.models.resnet18(num_classes=10), 3, input_size=(3, 64, 64)),
            (3, 64, 64),
        ),
        (
            lambda: srblock.add_sr(
                timm.create_model("mobilenetv3_small_050", num_classes=10), 3, input_size=(3, 64, 64)
            ),
            (3, 64, 64),
        ),
    ],
    ids=["zoo", "torchvision", "timm"],
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_onnx_parity(build, input_size, dynamic, tmp_path):
    model = build().eval()
    fill_memory(model, std=0.1)
    path = export_onnx(model, input_size, tmp_path / "m.onnx", dynamic_batch=dynamic)
    assert onnx_max_diff(model, path, input_size, batch=1) < 1e-4
    if dynamic:
        assert onnx_max_diff(model, path, input_size, batch=5) < 1e-4


def test_export_cli_and_onnx_bench(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    assert (
        main(
            argv(
                "export --model timm:convnext_atto --sr-stage 3 --input-size 3 64 64 --onnx {onnx} "
                "--dynamic-batch",
                onnx=out,
            )
        )
        == 0
    )
    text = capsys.readouterr().out
    assert out.stat().st_size > 0 and "onnxruntime vs PyTorch max |diff|" in text
    assert (
        main(
            argv(
                "bench --model resnet10s_cifar --sr-stage 3 --input-size 3 32 32 --onnx --repeats 3 "
                "--warmup 1 --json"
            )
        )
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mode"] == "onnxruntime inference" and row["sr_ms"] > 0


def onnx_round_trip(model: nn.Module, x: torch.Tensor, tmp_path, **export_kwargs) -> float:
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], **export_kwargs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        return float((torch.from_numpy(out) - model(x)).abs().max())


def test_onnx_export_of_a_zoo_model(tmp_path):
    model = srblock.create_model("resnet18_cifar", num_classes=10, sr_stage=3).eval()
    fill_memory(model, std=0.1)
    assert onnx_round_trip(model, torch.randn(2, 3, 32, 32), tmp_path) < 1e-4


def test_onnx_export_at_another_feature_size(tmp_path):
    """Memory 8x8 at 32x32 training images; exported for 48x48 images: pooled and resized."""
    model = srblock.create_model("resnet18_cifar", num_classes=10, sr_stage=3).eval()
    fill_memory(model, std=0.1)
    assert onnx_round_trip(model, torch.randn(1, 3, 48, 48), tmp_path) < 1e-4


def test_segmentation_model_exports_its_main_head(tmp_path):
    model = srblock.create_model("fcn_resnet10s", sr_stage=2).eval()
    fill_memory(model, 0.1)
    path = export_onnx(model, (1, 64, 64), tmp_path / "seg.onnx")
    import onnx

    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["logits"]  # the auxiliary head is not exported
    assert onnx_max_diff(model, path, (1, 64, 64), batch=1) < 1e-4


def test_export_leaves_the_callers_model_as_it_was(tmp_path):
    """Export and check run the model in eval mode on its own device, then give it back in its mode."""
    model = srblock.create_model("resnet10s_cifar", sr_stage=3).train()
    path = export_onnx(model, (3, 32, 32), tmp_path / "m.onnx")
    assert model.training
    moved = []
    original_cpu = model.cpu
    model.cpu = lambda *a, **k: moved.append(True) or original_cpu(*a, **k)
    assert onnx_max_diff(model, path, (3, 32, 32), batch=1) < 1e-4
    assert not moved and model.training


def test_export_errors(seg_run, capsys, tmp_path):
    assert main(["export", "--onnx", "x.onnx"]) == 2
    assert "give --model NAME" in capsys.readouterr().err
    assert (
        main(["export", str(seg_run), "--model", "resnet18_cifar", "--onnx", str(tmp_path / "x.onnx")]) == 2
    )
    assert "--model does nothing with a run folder, whose model is its own" in capsys.readouterr().err
    # every flag that describes a model is applied or refused: --sr-hidden was silently ignored
    for flags in (
        ["--sr-hidden", "16"],
        ["--sr-act", "gelu"],
        ["--size", "64"],
        ["--input-size", "3", "8", "8"],
    ):
        assert main(["export", str(seg_run), *flags, "--onnx", str(tmp_path / "x.onnx")]) == 2
        err = capsys.readouterr().err
        assert f"{flags[0]} does nothing with a run folder" in err.splitlines()[-1], err
    assert main(["export", str(seg_run), "--hf", str(tmp_path / "hf"), "--dynamic-batch"]) == 2
    assert "--dynamic-batch does nothing with --hf" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "hf").exists()
    assert main(["export", "--model", "timm:nonexistent_net", "--onnx", "x.onnx"]) == 2
    assert "unknown timm model 'nonexistent_net'" in capsys.readouterr().err
    assert main(["export", "--model", "resnet10s_cifar", "--onnx", str(tmp_path)]) == 2
    assert (
        f"{tmp_path} is a folder: give the ONNX file's path, e.g. {tmp_path / 'model.onnx'}"
        in capsys.readouterr().err
    )


def test_export_a_segmentation_run_folder(seg_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder = seg_run
    assert main(["export", str(folder), "--onnx", str(tmp_path / "seg.onnx")]) == 0
    out = capsys.readouterr().out
    assert "1 x 3 x 32 x 48" in out and (tmp_path / "seg.onnx").is_file()  # the training crop's size


def test_an_export_that_fails_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    model = srblock.create_model("resnet10s_cifar", sr_stage=3)
    path = export_onnx(model, (3, 32, 32), tmp_path / "m.onnx")
    before = path.read_bytes()

    def half_written(module, args, f, **kwargs):
        Path(f).write_bytes(before[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", half_written)
    with pytest.raises(
        ValueError, match="no space left on device while writing .*m.onnx; the previous file is kept"
    ):
        export_onnx(model, (3, 32, 32), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
