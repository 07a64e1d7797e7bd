"""A model with an SR block under torch.compile and exported to ONNX (slow: seconds to a minute)."""

import pytest
import torch
from torch import nn

import srblock

from .conftest import fill_memory

pytestmark = pytest.mark.slow


def small_net() -> nn.Module:
    """A tiny two-stage CNN: compiles in seconds, unlike a ResNet."""
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    srblock.add_sr(net, stage="1", memory_blocks=3, input_size=(3, 16, 16))
    fill_memory(net)
    return net.eval()


def test_torch_compile_matches_eager_and_trains():
    net = small_net()
    x = torch.randn(4, 3, 16, 16)
    compiled = torch.compile(net)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x))
    block = srblock.sr_blocks(net)[0][1]
    assert block.last_weights.shape == (4, 3)
    net.train()
    loss = compiled(x).sum()
    loss.backward()
    assert block.memory.grad is not None and block.squeeze.weight.grad.abs().sum() > 0


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


def test_zoo_model_channels_last_and_autocast():
    model = srblock.create_model("resnet18_cifar", num_classes=10, sr_stage=3).eval()
    fill_memory(model, std=0.1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), reference, atol=1e-4, rtol=1e-4)
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast("cpu", dtype=dtype):
                out = model(x)
            assert out.dtype == dtype
            assert nn.functional.cosine_similarity(out.float().flatten(), reference.flatten(), dim=0) > 0.99


def test_segmentation_model_exports_its_main_head(tmp_path):
    from srblock.export import export_onnx, onnx_max_diff

    model = srblock.create_model("fcn_resnet10s", sr_stage=2).eval()
    fill_memory(model, 0.1)
    path = export_onnx(model, (1, 64, 64), tmp_path / "seg.onnx")
    import onnx

    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["logits"]  # the auxiliary head is not exported
    assert onnx_max_diff(model, path, (1, 64, 64), batch=1) < 1e-4
