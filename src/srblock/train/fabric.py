"""Lightning Fabric for a run: its devices and precision, and the names of the machine and the
versions a result records."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from lightning.fabric import Fabric

from .. import startup


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


def versions() -> dict[str, str]:
    import lightning
    import timm
    import torchvision

    from .. import __version__

    return {
        "srblock": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def device_name(fabric: Fabric) -> str:
    if fabric.device.type == "cuda":
        return torch.cuda.get_device_name(fabric.device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


COMPILE_CACHE = Path.home() / ".cache" / "srblock" / "inductor"


def _torch_default_cache() -> str:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return default_cache_dir()
    except (ImportError, AttributeError):  # another torch: its default as torch 2.x names it
        import getpass
        import tempfile

        return os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")


def use_compile_cache() -> tuple[Path | None, str | None]:
    """torch.compile's caches (inductor's FX graphs and AOT autograd's) in a folder that outlives
    the process, so a second seed, a resume or a rerun starts compiled in seconds: COMPILE_CACHE,
    unless TORCHINDUCTOR_CACHE_DIR names another. (Importing torch._dynamo sets that variable to
    torch's own default, a folder in /tmp, so that value counts as not chosen.)

    Returns (the cache folder, a line to print or None). Where no folder can be written the
    folder is None: the run trains eager, and the line says which variable to set."""
    fix = f"set {startup.CACHE_VARIABLE} to a folder you can write"
    notes = []
    if startup.cache_set_aside:  # the user's folder, which torch could not make (startup.py)
        value, why = startup.cache_set_aside
        notes.append(f"{startup.CACHE_VARIABLE}={value} cannot hold torch.compile's cache ({why})")
    if os.environ.get(startup.CACHE_VARIABLE) in (None, _torch_default_cache()):
        for folder in (COMPILE_CACHE, Path(_torch_default_cache())):  # a read-only home: /tmp's
            why = startup.unusable_folder(folder)
            if why is None:
                os.environ[startup.CACHE_VARIABLE] = str(folder)
                break
            notes.append(f"{folder} cannot hold torch.compile's cache ({why})")
        else:
            return None, "; ".join(notes) + f": training eager (uncompiled); {fix}"
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    cache = Path(os.environ[startup.CACHE_VARIABLE])
    return cache, "; ".join(notes) + f": compiling with the cache in {cache}; {fix}" if notes else None
