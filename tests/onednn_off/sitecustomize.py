"""Turns oneDNN (mkldnn) off in every Python process that has this folder on PYTHONPATH: the test
suite, its workers and the commands they start. `PYTHONPATH=tests/onednn_off python -m pytest -q
-n auto` runs the suite on PyTorch's own CPU kernels, to show that no test holds a value only
oneDNN's kernels (which pick their blocking by CPU model) compute."""

import torch

torch.backends.mkldnn.enabled = False
