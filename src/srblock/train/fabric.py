"""Lightning Fabric for a run: its devices and precision, and the name of the device a result
records (provenance.py holds the versions and the commit)."""

from __future__ import annotations

import torch
from lightning.fabric import Fabric

from ..provenance import cpu_name


def resolve_precision(precision: str, accelerator: str) -> str:
    """`auto`: bf16-mixed on a GPU, 32-true on the CPU (where bf16 autocast is slower)."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def make_fabric(
    accelerator: str = "auto", devices: int | str | list[int] = 1, num_nodes: int = 1, precision: str = "auto"
) -> Fabric:
    """A launched Fabric: one process per device (DDP) when there are several devices or nodes."""
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ValueError(f"--accelerator {accelerator}: no CUDA GPU here; use --accelerator cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--accelerator mps: no Apple GPU here; use --accelerator cpu (or auto)")
    on_gpu = accelerator in ("cuda", "gpu", "mps") or (accelerator == "auto" and torch.cuda.is_available())
    if precision.startswith("16") and not on_gpu:  # Lightning would quietly train in bf16 instead
        raise ValueError(
            f"--precision {precision} (float16) needs a CUDA GPU; on the CPU use bf16-mixed or 32-true"
        )
    if accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available()):
        torch.set_float32_matmul_precision("high")  # TF32 for float32 matrix products and convolutions
    if isinstance(devices, (list, tuple)):  # [k]: GPU k; on the CPU, a count of processes
        devices = list(devices) if on_gpu else len(devices)
    several = (
        num_nodes > 1
        or devices == "auto"
        or (len(devices) if isinstance(devices, list) else int(devices)) > 1
    )
    fabric = Fabric(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if several else "auto",
        precision=resolve_precision(precision, accelerator),
    )
    fabric.launch()
    return fabric


def device_name(fabric: Fabric) -> str:
    if fabric.device.type == "cuda":
        return torch.cuda.get_device_name(fabric.device)
    return cpu_name()
