"""ONNX export of any model with SR blocks, checked against PyTorch with onnxruntime; a run's
weights in timm's hub format to share (`export_hf`, the format: hub.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from .atomic_files import (
    disk_full,
    new_file_mode,
    refuse_foreign,
    remove_stale_temporaries,
    temporary_beside,
    write_atomic,
    write_text_atomic,
)
from .hub import HUB_CONFIG, HUB_WEIGHTS, json_value, timm_model_args
from .insert import evaluating
from .models.segmentation import main_output


class _MainOutput(nn.Module):
    """The logits alone: a segmentation model's main head ("out" of its dict), a classifier's own."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


def export_onnx(
    model: nn.Module,
    input_size: tuple[int, int, int],
    path: str | Path,
    *,
    dynamic_batch: bool = False,
    batch: int = 1,
) -> Path:
    """Writes `model` (in eval mode) as ONNX with input "x" and output "logits" (for a
    segmentation model the main head's per-pixel logits).

    torch.onnx's default (dynamo) exporter is used: it also pools a feature map whose size is not
    a multiple of the memory's, which the legacy TorchScript exporter cannot.
    """
    path = Path(path)
    if path.is_dir():  # before the export's seconds, not after them
        raise ValueError(f"{path} is a folder: give the ONNX file's path, e.g. {path / 'model.onnx'}")
    refuse_foreign(path, _exported_onnx, "torch.onnx (srblock export)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # a dynamic batch is traced at batch 2: torch.export specialises a size-1 dimension
    x = torch.randn(
        max(batch, 2) if dynamic_batch else batch, *input_size, device=next(model.parameters()).device
    )
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    remove_stale_temporaries(path)  # what a killed export left
    fd, name = temporary_beside(path)  # a failed export leaves an existing file as it was
    os.close(fd)
    tmp = Path(name)
    try:
        # the exporter narrates its steps; the caller's model is back in its own mode afterwards
        with contextlib.redirect_stdout(io.StringIO()), evaluating(model):
            torch.onnx.export(
                _MainOutput(model).eval(),
                (x,),
                str(tmp),
                input_names=["x"],
                output_names=["logits"],
                dynamic_shapes=dynamic,
                external_data=False,
            )
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except Exception as err:
        if disk_full(err, path.parent):
            raise ValueError(
                f"no space left on device while writing {path}; the previous file is kept"
            ) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _exported_onnx(path: Path) -> bool:
    """An ONNX file torch.onnx wrote (its producer, in the file's first bytes): an export of
    before, which a new export may replace."""
    with open(path, "rb") as f:
        return b"\x12\x07pytorch" in f.read(64)


def onnx_session(path: str | Path):
    """An onnxruntime CPU session whose threads sleep when idle.

    By default onnxruntime's threads spin after a run; two sessions timed in turn would then
    steal the CPU from each other.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("onnxruntime is not installed: pip install 'srblock[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def onnx_max_diff(
    model: nn.Module, path: str | Path, input_size: tuple[int, int, int], batch: int = 2, seed: int = 0
) -> float:
    """Largest |onnxruntime - PyTorch| over the outputs for random inputs of `batch` images."""
    x = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))
    (out,) = onnx_session(path).run(None, {"x": x.numpy()})
    device = next(model.parameters()).device  # the caller's model stays where it is, in its mode
    with evaluating(model):
        reference = _MainOutput(model)(x.to(device)).cpu()
    return float((torch.from_numpy(out) - reference).abs().max())


def refuse_foreign_files(out: Path) -> None:
    """An export writes into a folder only the two files it owns: a config.json (or weights beside
    one) that an srblock export did not write is the user's, and is never replaced."""
    config = out / HUB_CONFIG
    try:
        ours = isinstance(data := json.loads(config.read_text()), dict) and "srblock" in data
    except (OSError, ValueError):  # none there, or not JSON: not an export's
        ours = False
    for name in (HUB_CONFIG, HUB_WEIGHTS):
        if (out / name).exists() and not ours:
            raise ValueError(
                f"{out / name} exists and was not written by srblock export: export into another folder "
                "(an export writes config.json and model.safetensors), or move that file away"
            )


def export_hf(folder: str | Path, out: str | Path) -> Path:
    """Writes `folder`'s tested weights and config in timm's hub format into `out`; returns `out`."""
    from safetensors.torch import save

    from .data import DATASETS
    from .run_folder import RunFolder
    from .run_model import trained_model
    from .timm_models import PREFIX, TIMM_NAMES, _pretrained_cfg

    folder, out = Path(folder), Path(out)
    model, cfg, input_size = trained_model(folder)
    architecture = f"{PREFIX}{cfg.model}"
    if architecture not in TIMM_NAMES:
        raise ValueError(
            f"{cfg.model} is not one of srblock's classifiers in timm's registry ({', '.join(TIMM_NAMES)}): "
            "share it as ONNX instead (srblock export RUN --onnx FILE)"
        )
    mean, std = DATASETS[cfg.dataset].stats(input_size[0])
    pretrained_cfg = {
        **_pretrained_cfg(cfg.model, model, cfg.num_classes()),
        "mean": list(mean),
        "std": list(std),
    }
    config = {
        "architecture": architecture,
        "num_classes": cfg.num_classes(),
        "num_features": model.num_features,
        "label_names": list(RunFolder(folder).class_names(cfg)),
        "pretrained_cfg": {k: json_value(v) for k, v in pretrained_cfg.items() if k != "architecture"},
        "model_args": timm_model_args(cfg),
        "srblock": {"config": cfg.record()},
    }
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    refuse_foreign_files(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / HUB_WEIGHTS, lambda f: f.write(save(weights)))
    write_text_atomic(out / HUB_CONFIG, json.dumps(config, indent=2))
    return out
