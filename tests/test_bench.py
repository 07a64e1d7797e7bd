"""Cost: multiply-adds by hand, the fused recall, interleaved timing, `srblock bench`."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import srblock
from srblock.bench import Timing, bench_onnx_pair, bench_pair, count_macs
from srblock.cli import main
from srblock.paper_latency import PAPER_SETTINGS, bench_paper
from srblock.spec import SRSpec

from .helpers import argv


def block_macs(c, size, p, h, cs=1, feature_size=None):
    """An SR block's multiply-adds on one image, by hand: squeeze conv over the incoming map, the
    two linear layers, and the recall matmul at the memory's size (the final add is no multiply-add)."""
    height, width = size
    fh, fw = feature_size or size
    return c * cs * fh * fw + cs * height * width * h + h * p + p * c * height * width


@pytest.mark.parametrize(
    "c,size,p,h,cs", [(256, (8, 8), 4, 8, 1), (64, (7, 5), 10, 16, 2), (1024, (14, 14), 2, 16, 1)]
)
def test_block_macs_equal_a_hand_count(c, size, p, h, cs):
    block = srblock.SqueezeRemember(c, size, SRSpec(memory_blocks=p, hidden=h, squeeze_channels=cs))
    by_hand = block_macs(c, size, p, h, cs)
    with torch.device("meta"):
        wrapped = torch.nn.Sequential(block)
    assert count_macs(wrapped, (c, *size), batch=1) == by_hand
    assert count_macs(torch.nn.Sequential(block.to("cpu")), (c, *size), batch=3) == 3 * by_hand


def test_fused_recall_equals_the_reference_sum():
    block = srblock.SqueezeRemember(32, (6, 4), SRSpec(memory_blocks=7))
    with torch.no_grad():
        block.memory.normal_()
    weights = torch.softmax(torch.randn(5, 7), -1)
    reference = sum(weights[:, p, None, None, None] * block.memory[p] for p in range(7))
    x = torch.randn(5, 32, 6, 4)
    torch.testing.assert_close(block.remember(x, weights) - x, reference, rtol=1e-5, atol=1e-5)
    x = torch.randn(5, 32, 12, 8)
    resized = block.remember(x, weights) - x
    torch.testing.assert_close(
        resized,
        torch.nn.functional.interpolate(reference, size=(12, 8), mode="bilinear"),
        rtol=1e-5,
        atol=1e-5,
    )


def test_model_macs_grow_by_the_blocks_macs():
    model = srblock.create_model("resnet18_cifar", sr_stage=3, sr_memory_blocks=4)
    plain = srblock.remove_sr(srblock.create_model("resnet18_cifar", sr_stage=3, sr_memory_blocks=4))
    assert count_macs(model, (3, 32, 32)) - count_macs(plain, (3, 32, 32)) == block_macs(256, (8, 8), 4, 8)


def test_timing_summary_median_ratio_and_interval():
    plain = np.full(40, 0.010)
    sr = plain * np.linspace(1.01, 1.03, 40)
    summary = Timing(plain, sr).summary()
    assert summary["overhead_pct"] == pytest.approx(2.0, abs=0.05)
    assert summary["overhead_ci_low_pct"] <= summary["overhead_pct"] <= summary["overhead_ci_high_pct"]
    assert summary["plain_ms"] == pytest.approx(10.0) and summary["repeats"] == 40
    # one pair (or a few) has no interval: 2.79 [2.79, 2.79] read as certainty before
    few = Timing(plain[:3], sr[:3]).summary()
    assert few["overhead_ci_low_pct"] is None and few["overhead_ci_high_pct"] is None


def test_interleaved_benchmark_runs_on_cpu_at_a_tiny_size():
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, sr_memory_blocks=2)
    row = bench_pair(model, (3, 16, 16), batch=2, repeats=4, warmup=1)
    assert row["plain_ms"] > 0 and row["sr_ms"] > 0 and row["repeats"] == 4
    assert row["sr_params"] == sum(p.numel() for p in srblock.sr_blocks(model)[0][1].parameters())
    # stage 3 is 64 x 4 x 4 at 16x16: the squeeze runs there, the 8x8 memory is pooled to and resized from it
    assert row["sr_macs"] == 2 * block_macs(64, (8, 8), 2, 8, feature_size=(4, 4))
    model.eval()
    train = bench_pair(model, (3, 16, 16), batch=2, repeats=2, warmup=1, train=True, channels_last=True)
    assert train["mode"] == "train step"
    assert not model.training and model.conv1.weight.is_contiguous()  # the caller's model as it was
    with pytest.raises(ValueError, match="no SR block to measure"):
        bench_pair(srblock.create_model("resnet10s_cifar"), (3, 16, 16))
    with pytest.raises(ValueError, match="no SR block to measure"):
        bench_onnx_pair(srblock.create_model("resnet10s_cifar"), (3, 16, 16))


def test_bench_cli_json(capsys):
    args = argv(
        "bench --model resnet10s_cifar --sr-stage 3 --input-size 3 16 16 --batch-size 2 --repeats 3 "
        "--warmup 1 --json"
    )
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (
        row["setting"] == "resnet10s_cifar"
        and row["input_size"] == [3, 16, 16]
        and row["macs_overhead_pct"] > 0
    )
    grey = [a if a != "3" or i != args.index("--input-size") + 1 else "1" for i, a in enumerate(args)]
    assert main(grey) == 0  # grey images, as Fashion-MNIST's
    assert json.loads(capsys.readouterr().out)[0]["input_size"] == [1, 16, 16]


def test_bench_cli_segmentation_training_step_at_hxw(capsys):
    """A segmentation model's training step (main + auxiliary loss) at a non-square size, its own P."""
    args = argv(
        "bench --model fcn_resnet10s --sr-stage 2 --input-size 1 32 48 --batch-size 2 --train --repeats 2 "
        "--warmup 1 --json"
    )
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["input_size"] == [1, 32, 48] and row["mode"] == "train step" and row["sr_ms"] > 0
    # Eq. 1, P = 4, 32 x 16 x 24
    assert row["sr_params"] == 4 * 32 * 16 * 24 + 32 + 1 + 16 * 24 * 8 + 8 + 8 * 4 + 4
    with pytest.raises(SystemExit) as usage:
        main(["bench", "--model", "fcn_resnet10s", "--sr-stage", "2", "--size", "32y48"])
    assert usage.value.code == 2 and "HxW" in capsys.readouterr().err


def test_bench_errors(capsys):
    assert main(["bench", "--model", "resnet10s_cifar", "--size", "16"]) == 2
    assert "no SR block to measure" in capsys.readouterr().err


def test_paper_settings_at_a_tiny_size():
    """`bench --paper`'s rows, each beside the paper's numbers (here ResNet10s at 16x16, CPU)."""
    small = [
        s.__class__(
            s.name,
            dict(name="resnet10s_cifar", sr_stage=3, sr_memory_blocks=2),
            (3, 16, 16),
            2,
            s.train,
            s.device,
            s.paper_plain_ms,
            s.paper_sr_ms,
        )
        for s in PAPER_SETTINGS
    ]
    rows = bench_paper("cpu", repeats=2, warmup=1, settings=small)
    assert [r["setting"] for r in rows] == [s.name for s in PAPER_SETTINGS]
    assert rows[0]["mode"] == "train step" and rows[0]["paper_overhead_pct"] == pytest.approx(
        100 * (379 / 377 - 1)
    )
    assert rows[1]["paper_overhead_pct"] is None and all(r["sr_ms"] > 0 for r in rows)


@pytest.mark.slow
def test_onnx_pair_times_both_exports():
    pytest.importorskip("onnxruntime")
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, sr_memory_blocks=2)
    row = bench_onnx_pair(model, (3, 16, 16), batch=1, repeats=3, warmup=1)
    assert (
        row["mode"] == "onnxruntime inference"
        and row["plain_ms"] > 0
        and row["sr_ms"] > 0
        and row["repeats"] == 3
    )
    assert srblock.sr_blocks(model)  # the caller's model keeps its block


def test_compiled_pair_runs_both_models_through_torch_compile(capsys):
    """`compile` puts both models through torch.compile (here a two-conv net: seconds to compile)."""
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    srblock.add_sr(net, stage="1", spec=SRSpec(memory_blocks=2), input_size=(3, 16, 16))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    row = bench_pair(net, (3, 16, 16), batch=2, repeats=2, warmup=1, compile="default")
    assert row["compile"] == "default" and row["sr_ms"] > 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the plain one and the SR one
    with pytest.raises(ValueError, match="not one of default, reduce-overhead"):
        bench_pair(net, (3, 16, 16), compile="fast")
    assert main(argv("bench --model resnet10s_cifar --sr-stage 3 --onnx --compile default")) == 2
    assert "--compile does nothing with --onnx" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line, message",
    [
        ("bench --paper --model resnet18_cifar", "--model does nothing with --paper"),
        ("bench --paper --batch-size 8 --train", "--batch-size --train do nothing with --paper"),
        (
            "bench --model resnet10s_cifar --sr-stage 3 --profile --repeats 9",
            "--repeats does nothing with --profile",
        ),
        (
            "bench --model resnet10s_cifar --sr-stage 3 --onnx --precision bf16-mixed",
            "--precision does nothing with --onnx",
        ),
        ("params --table cifar100 --sr-stage 3", "--sr-stage does nothing with --table"),
        ("params --table cifar100 --sr-hidden 16 --attn se", "--attn --sr-hidden do nothing with --table"),
    ],
)
def test_a_flag_the_mode_does_not_use_is_refused_in_one_line(line, message, capsys):
    assert main(argv(line)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
