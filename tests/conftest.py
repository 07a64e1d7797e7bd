"""Fixtures: a fixed torch seed for every test, and small data sets written once per session."""

import os
from pathlib import Path

# torch.compile on the CPU writes scalar C++ rather than AVX code: a compile test checks that the
# compiled network computes what the eager one does and that the loops train through it, which
# the scalar code shows as well, and g++ builds it in half the time (the tests' processes inherit it)
os.environ.setdefault("TORCHINDUCTOR_VEC_ISA_OK", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

from .helpers import TINY_SEG, argv, write_cifar10, write_cityscapes, write_imagenet

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: one thread per worker, so the two share the cores
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar(tmp_path_factory) -> Path:
    """A CIFAR-10 folder of 300 training and 80 test images."""
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=60, test=80)


@pytest.fixture(scope="session")
def cityscapes(tmp_path_factory) -> Path:
    """A Cityscapes folder of 4 training and 2 validation images of 32x64, two cities each."""
    return write_cityscapes(tmp_path_factory.mktemp("cityscapes"))


@pytest.fixture(scope="session")
def imagenet(tmp_path_factory) -> Path:
    """An ImageNet folder of 3 classes, 4 training and 2 validation JPEGs each."""
    return write_imagenet(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="session")
def seg_run(cityscapes, tmp_path_factory) -> Path:
    """A finished two-iteration segmentation run (fcn_resnet10s + SR after stage 2, 32x48 crops)."""
    from srblock.cli import main

    out = tmp_path_factory.mktemp("seg_run")
    line = "train cityscapes --data {data} --out {out} --set model=fcn_resnet10s --set sr_stage=2"
    assert main(argv(line, data=cityscapes, out=out) + TINY_SEG) == 0
    [folder] = [p.parent for p in out.rglob("result.json")]
    return folder
