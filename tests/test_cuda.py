"""The device paths: the block, insertion and every zoo model in bf16 autocast and channels_last,
torch.compile, both training loops on the fast and the DataLoader paths, a killed-and-resumed run,
optimiser state after a resume, ONNX export of a trained model, the default precision.

Each runs on the CPU and on a CUDA GPU (`device` is "cpu" or "cuda"): the CPU runs everywhere, so a
changed signature fails here first; the CUDA runs are marked `cuda`, collected everywhere and
skipped without a GPU (`benchmarks/gpu_check.py` runs them). Slow CPU twins of tests that other
modules cover on the CPU already are marked slow.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import torch

import srblock
from srblock import create_model, list_models, sr_blocks
from srblock.checkpoint import load_checkpoint
from srblock.cli import main
from srblock.keys import make_config
from srblock.metrics_log import METRIC_COLUMNS
from srblock.models.segmentation import main_output
from srblock.run_folder import RunFolder
from srblock.spec import SRSpec
from srblock.train import make_fabric
from srblock.train.classify import MEMORY_COLUMNS as CLASSIFY_MEMORY_COLUMNS
from srblock.train.engine import start_run

from .helpers import KILLER, TINY, TINY_SEG, argv, cli_env, fill_memory, main_one_thread

pytestmark = [pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")]
GPU = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")],
)
DEVICES = ["cpu", GPU]
SLOW_ON_CPU = [pytest.param("cpu", marks=pytest.mark.slow), GPU]
# what the CPU already checks elsewhere (test_block's compiled SR net, test_train's killed-run resume)
GPU_ONLY = [GPU]


def on(device: str) -> list[str]:
    return ["--accelerator", device]


@pytest.mark.parametrize("device", DEVICES)
def test_block_in_bf16_autocast_and_channels_last(device):
    block = srblock.SqueezeRemember(256, (8, 8), SRSpec(memory_blocks=4)).to(device)
    fill_memory(block, 0.1)
    x = torch.randn(8, 256, 8, 8, device=device, requires_grad=True)
    reference = block(x.double().float())
    with torch.autocast(device, dtype=torch.bfloat16):
        out = block(x.contiguous(memory_format=torch.channels_last))
        # the block keeps its input's dtype: float32 stays float32, a bf16 map (a conv's, under autocast) bf16
        assert block(x.bfloat16()).dtype == torch.bfloat16
        weights = block.memory_weights(x.bfloat16())
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(weights.sum(1), torch.ones(8, device=device))
    error = (out.float() - reference).norm() / reference.norm()
    assert error < 1e-2  # bf16 operands
    out.float().sum().backward()
    assert block.memory.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("device", SLOW_ON_CPU)
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_trains_a_step_in_bf16_channels_last(name, device):
    model = create_model(name, sr_stage=2).to(device).to(memory_format=torch.channels_last).train()
    size = model.default_input_size
    if size[1] > 64:  # the segmentation crop and ImageNet's 224, smaller (on the CPU: much smaller,
        # a ResNet-50's bf16 step at 64 x 128 took 15-23 s there; every layer still runs at 32 x 64)
        size = (size[0], *((128, 256) if device == "cuda" else (32, 32 * size[2] // size[1])))
    x = torch.randn(2, *size, device=device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = model(x)
        loss = main_output(out).float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert sr_blocks(model)[0][1].memory.grad is not None


@pytest.mark.parametrize("device", DEVICES)
def test_insertion_into_torchvision_and_timm_on_the_device(device):
    for name in ("tv:resnet18", "timm:convnext_atto"):
        model = create_model(name, num_classes=10).to(device).eval()
        x = torch.randn(2, 3, 64, 64, device=device)
        with torch.no_grad():
            plain = model(x)
            srblock.add_sr(model, 3, input_size=(3, 64, 64))
            assert sr_blocks(model)[0][1].memory.device.type == device
            assert torch.equal(model(x), plain)  # a fresh block is the identity on the GPU too


@pytest.mark.parametrize("device", GPU_ONLY)
def test_compiled_model_matches_eager(device):
    model = create_model("resnet10s_cifar", num_classes=10, sr_stage=3).to(device).eval()
    fill_memory(model, 0.1)
    compiled = torch.compile(model)
    x = torch.randn(16, 3, 32, 32, device=device)
    with torch.no_grad():
        got, expected = compiled(x), model(x)
    # both run cuDNN's convolutions in TF32 (PyTorch's default), each with its own algorithms
    assert (got - expected).norm() / expected.norm() < 2e-3


@pytest.mark.parametrize("device", SLOW_ON_CPU)
@pytest.mark.parametrize("loader", ["fast", "dataloader"])
def test_classification_loop_on_the_device(cifar, tmp_path, loader, device):
    line = "train cifar10 --data {data} --out {out} --set epochs=1"
    # compiled on the CPU without a block: its bypassed evaluation would compile a graph more (test_block
    # compiles an SR network on the CPU); with one everywhere else
    line += "" if (device, loader) == ("cpu", "fast") else " --set sr_stage=3"
    sets = ["--set", f"loader={loader}", "--set", f"compile={str(loader == 'fast').lower()}"]
    sets += ["--set", "eval_batch_size=10", "--set", "batch_size=30"]  # every batch full: no graph per size
    assert main(argv(line, data=cifar, out=tmp_path) + TINY + on(device) + sets) == 0
    [path] = tmp_path.rglob("result.json")
    result = json.loads(path.read_text())
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    assert result["device"].startswith(name) and result["config"]["precision"] == "auto"
    assert 0 <= result["test_acc"] <= 100


@pytest.mark.parametrize("device", SLOW_ON_CPU)
def test_segmentation_loop_on_the_device(cityscapes, tmp_path, device):
    line = "train cityscapes --data {data} --out {out} --set model=fcn_resnet10s --set sr_stage=2"
    assert main(argv(line, data=cityscapes, out=tmp_path) + TINY_SEG + on(device)) == 0
    [path] = tmp_path.rglob("result.json")
    assert 0 <= json.loads(path.read_text())["test_miou"] <= 100


@pytest.mark.parametrize("device", SLOW_ON_CPU)
def test_imagenet_batch_decode(imagenet, tmp_path, device):
    """`gpu_decode`: workers read bytes, batches are decoded on the device (the CPU: the main process)."""
    line = "train imagenet --data {data} --out {out} --quiet --set epochs=1 --set batch_size=4"
    line += " --set image_size=32 --set eval_batch_size=4 --set num_workers=2 --set gpu_decode=true"
    line += " --set model=resnet10s_cifar"
    assert main(argv(line, data=imagenet, out=tmp_path) + on(device)) == 0


@pytest.mark.parametrize("device", GPU_ONLY)
def test_a_killed_run_resumes_on_the_device(cifar, tmp_path, device):
    """Killed 4 steps into epoch 2 and resumed: the same weights as an uninterrupted run, within bf16
    tolerance on the GPU (cuDNN may choose other convolution algorithms in the new process)."""
    env = cli_env(KILL_AT="13", MARKER=str(tmp_path / "marker"))  # one thread, as main_one_thread

    def returncode(*args: str) -> int:
        return subprocess.run([sys.executable, *args], env=env, capture_output=True, check=False).returncode

    common = (
        argv("train cifar10 --data {data} --set epochs=2 --set sr_stage=3", data=cifar) + TINY + on(device)
    )
    assert main_one_thread(*common, "--out", str(tmp_path / "straight")) == 0
    assert returncode("-c", KILLER, *common, "--out", str(tmp_path / "killed")) == -signal.SIGKILL
    killed = str(tmp_path / "killed")
    assert main_one_thread("train", "cifar10", "--resume", "--out", killed, *on(device)) == 0
    [a] = (tmp_path / "killed").rglob("last.ckpt")
    [b] = (tmp_path / "straight").rglob("last.ckpt")
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    for key in b:
        if b[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], atol=2e-2, rtol=2e-2, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_optimiser_state_lands_on_the_device_after_a_resume(cifar, tmp_path, device):
    line = "train cifar10 --data {data} --out {out} --set epochs=1 --set sr_stage=3"
    assert main(argv(line, data=cifar, out=tmp_path) + TINY + on(device)) == 0
    [folder] = [p.parent for p in tmp_path.rglob("last.ckpt")]
    (folder / "result.json").unlink()
    fabric = make_fabric(device)
    cfg = RunFolder(folder).config()
    run = start_run(
        fabric,
        cfg,
        folder,
        unit="epoch",
        lr_factor=lambda _: 1.0,
        columns=METRIC_COLUMNS,
        resume=True,
        memory_columns=CLASSIFY_MEMORY_COLUMNS,  # as the classification loop logs an SR run's memory
    )
    states = [s for s in run.optimizer.state.values() if "momentum_buffer" in s]
    assert run.step == 1 and states and all(s["momentum_buffer"].device.type == device for s in states)


@pytest.mark.parametrize("device", GPU_ONLY)
def test_analysis_on_the_device_gives_the_cpus_numbers(cifar, tmp_path, device):
    from srblock.analysis import run_analysis

    line = "train cifar10 --data {data} --out {out} --set epochs=1 --set sr_stage=3"
    assert main(argv(line, data=cifar, out=tmp_path) + TINY + on("cpu")) == 0
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    numbers = {}
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # float32 on both
    try:
        for where in ("cpu", device):
            paths = run_analysis(folder, per_class=4, device=where)
            numbers[where] = {n: json.loads(paths[n].read_text()) for n in ("weights.json", "ablation.json")}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    block = "layer3.sr"
    for name, stats in numbers["cpu"]["weights.json"]["blocks"][block]["per_class"].items():
        got = numbers[device]["weights.json"]["blocks"][block]["per_class"][name]
        assert got["weight_mean"] == pytest.approx(stats["weight_mean"], abs=1e-4)
    with_sr = numbers["cpu"]["ablation.json"]["with_sr"]  # one near-tie may flip: 1.25% of 80 images
    assert numbers[device]["ablation.json"]["with_sr"] == pytest.approx(with_sr, abs=1.3)


@pytest.mark.parametrize("device", GPU_ONLY)
def test_segmentation_examples_on_the_device(seg_run, device):
    from srblock.analysis.seg_examples import segmentation_examples

    path = segmentation_examples(seg_run, count=2, device=device)
    assert path.stat().st_size > 0


@pytest.mark.parametrize("device", SLOW_ON_CPU)
def test_onnx_export_of_a_model_trained_on_the_device(cifar, tmp_path, device):
    pytest.importorskip("onnxruntime")
    line = "train cifar10 --data {data} --out {out} --set epochs=1 --set sr_stage=3"
    assert main(argv(line, data=cifar, out=tmp_path) + TINY + on(device)) == 0
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert main(["export", str(folder), "--onnx", str(tmp_path / "m.onnx")]) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_the_default_precision_is_bf16_on_a_gpu_and_float32_on_the_cpu(device):
    assert make_config("cifar10").precision == "auto"
    fabric = make_fabric(device)
    with fabric.autocast():
        enabled = torch.is_autocast_enabled(device)
        assert (
            (enabled and torch.get_autocast_dtype(device) == torch.bfloat16)
            if device == "cuda"
            else not enabled
        )
