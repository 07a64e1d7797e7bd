"""Cost and deployment: MACs by hand, the fused recall, interleaved timing, ONNX parity."""

import json

import numpy as np
import pytest
import timm
import torch
import torchvision

import srblock
from srblock.bench import Timing, bench_pair, count_macs, sr_macs
from srblock.cli import main
from srblock.export import export_onnx, onnx_max_diff

from .conftest import fill_memory


@pytest.mark.parametrize("c,size,p,h,cs", [(256, (8, 8), 4, 8, 1), (64, (7, 5), 10, 16, 2), (1024, (14, 14), 2, 16, 1)])
def test_block_macs_equal_a_hand_count(c, size, p, h, cs):
    block = srblock.SqueezeRemember(c, size, memory_blocks=p, hidden=h, squeeze_channels=cs)
    height, width = size
    by_hand = c * cs * height * width + cs * height * width * h + h * p + p * c * height * width
    assert sr_macs(block) == by_hand
    with torch.device("meta"):
        wrapped = torch.nn.Sequential(block)
    assert count_macs(wrapped, (c, height, width), batch=1) == by_hand
    assert count_macs(torch.nn.Sequential(block.to("cpu")), (c, height, width), batch=3) == 3 * by_hand


def test_fused_recall_equals_the_reference_sum():
    block = srblock.SqueezeRemember(32, (6, 4), memory_blocks=7)
    with torch.no_grad():
        block.memory.normal_()
    weights = torch.softmax(torch.randn(5, 7), -1)
    reference = sum(weights[:, p, None, None, None] * block.memory[p] for p in range(7))
    torch.testing.assert_close(block.recall(weights), reference, rtol=1e-5, atol=1e-5)
    resized = block.recall(weights, (12, 8))
    torch.testing.assert_close(resized, torch.nn.functional.interpolate(reference, size=(12, 8), mode="bilinear"), rtol=1e-5, atol=1e-5)


def test_model_macs_grow_by_the_blocks_macs():
    model = srblock.create_model("resnet18_cifar", sr_stage=3, sr_blocks=4)
    plain = srblock.remove_sr(srblock.create_model("resnet18_cifar", sr_stage=3, sr_blocks=4))
    block = srblock.sr_blocks(model)[0][1]
    assert count_macs(model, (3, 32, 32)) - count_macs(plain, (3, 32, 32)) == sr_macs(block)


def test_timing_summary_median_ratio_and_interval():
    plain = np.full(40, 0.010)
    sr = plain * np.linspace(1.01, 1.03, 40)
    summary = Timing(plain, sr).summary()
    assert summary["overhead_pct"] == pytest.approx(2.0, abs=0.05)
    assert summary["overhead_ci_low_pct"] <= summary["overhead_pct"] <= summary["overhead_ci_high_pct"]
    assert summary["plain_ms"] == pytest.approx(10.0) and summary["repeats"] == 40


def test_interleaved_benchmark_runs_on_cpu_at_a_tiny_size():
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, sr_blocks=2)
    row = bench_pair(model, (3, 16, 16), batch=2, repeats=4, warmup=1)
    assert row["plain_ms"] > 0 and row["sr_ms"] > 0 and row["repeats"] == 4
    assert row["sr_params"] == sum(p.numel() for p in srblock.sr_blocks(model)[0][1].parameters())
    assert row["sr_macs"] == 2 * sr_macs(srblock.sr_blocks(model)[0][1], 4, 4)  # stage 3 is 4x4 at 16x16
    train = bench_pair(model, (3, 16, 16), batch=2, repeats=2, warmup=1, train=True)
    assert train["mode"] == "train step"
    with pytest.raises(ValueError, match="no SR block to measure"):
        bench_pair(srblock.create_model("resnet10s_cifar"), (3, 16, 16))


def test_bench_cli_json(capsys):
    args = ["bench", "--model", "resnet10s_cifar", "--sr-stage", "3", "--size", "16", "--batch", "2", "--repeats", "3", "--warmup", "1", "--json"]
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["setting"] == "resnet10s_cifar" and row["input_size"] == [3, 16, 16] and row["macs_overhead_pct"] > 0


def test_bench_cli_segmentation_training_step_at_hxw(capsys):
    """A segmentation model's training step (main + auxiliary loss) at a non-square size, its own P."""
    args = ["bench", "--model", "fcn_resnet10s", "--sr-stage", "2", "--size", "32x48", "--batch", "2", "--train",
            "--repeats", "2", "--warmup", "1", "--json"]
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["input_size"] == [1, 32, 48] and row["mode"] == "train step" and row["sr_ms"] > 0
    assert row["sr_params"] == 4 * 32 * 16 * 24 + 32 + 1 + 16 * 24 * 8 + 8 + 8 * 4 + 4  # Eq. 1, P = 4, 32 x 16 x 24
    with pytest.raises(SystemExit) as usage:
        main(["bench", "--model", "fcn_resnet10s", "--sr-stage", "2", "--size", "32y48"])
    assert usage.value.code == 2 and "HxW" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "build,input_size",
    [
        (lambda: srblock.create_model("resnet10s_cifar", num_classes=10, sr_stage=3), (3, 32, 32)),
        (lambda: srblock.add_sr(torchvision.models.resnet18(num_classes=10), 3, input_size=(3, 64, 64)), (3, 64, 64)),
        (lambda: srblock.add_sr(timm.create_model("mobilenetv3_small_050", num_classes=10), 3, input_size=(3, 64, 64)), (3, 64, 64)),
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


@pytest.mark.slow
def test_export_cli_and_onnx_bench(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    assert main(["export", "--model", "timm:convnext_atto", "--sr-stage", "3", "--size", "64", "--onnx", str(out), "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert out.stat().st_size > 0 and "onnxruntime vs PyTorch max |diff|" in text
    assert main(["bench", "--model", "resnet10s_cifar", "--sr-stage", "3", "--size", "32", "--onnx", "--repeats", "3", "--warmup", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mode"] == "onnxruntime inference" and row["sr_ms"] > 0


def test_export_errors(capsys):
    assert main(["export", "--onnx", "x.onnx"]) == 2
    assert "give --model NAME" in capsys.readouterr().err
    assert main(["export", "--model", "timm:nonexistent_net", "--onnx", "x.onnx"]) == 2
    assert "unknown timm model 'nonexistent_net'" in capsys.readouterr().err
    assert main(["bench", "--model", "resnet10s_cifar", "--size", "16"]) == 2
    assert "no SR block to measure" in capsys.readouterr().err
