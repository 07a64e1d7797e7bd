"""What made a number: the versions of the code a run trained with, the commit of srblock's own
checkout, and the machine. No torch at import: a report and a table read them too."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def own_version() -> str:
    """srblock's version as installed (importlib.metadata), or 0+unknown run from a source tree."""
    try:
        return metadata.version("srblock")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def versions() -> dict[str, str]:
    """The versions a result records: srblock's as installed (importlib.metadata), the others' as
    imported (torch's with its build, e.g. +cu130)."""
    import lightning
    import timm
    import torch
    import torchvision

    return {
        "srblock": own_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


@functools.cache
def git_commit() -> str | None:
    """The commit of the srblock checkout that runs (an editable install), or None (an installed
    package: no checkout of srblock's own, even inside another repository). Asked of git once a
    process (each tracker of each run of a stack tags it)."""
    package = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    if done.returncode or len(lines) != 2 or Path(lines[0]) / "src" / "srblock" != package:
        return None
    return lines[1]


def cpu_name() -> str:
    """The CPU as a result names the device a run trained on: its processor and torch's threads."""
    import torch

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def machine() -> str:
    """This machine in a few words: its system, its CPU and, where there is one, its GPU."""
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.system()}, {cpu_name()}{gpu}"
