"""Forwards of the SR block to time against each other (benchmarks/gpu_check.py, `block_profile`):
the reference it replaced, the library's lean one, and candidates for what comes next. Each is
a function (block, x) -> output computing Eq. 1 with the block's own parameters; `use(name)`
makes every SqueezeRemember run it.

- reference: the forward before the lean one (tests/reference_block.py).
- lean: the library's (`SqueezeRemember.forward`): eager, the recall and the add as one addmm;
  under torch.compile, elementwise expressions that inductor fuses.
- addmm: the library's eager forward under torch.compile too (the squeeze conv and one addmm).
- mm_squeeze: lean, with the 1x1 squeeze conv as a matrix product on a view of the map (no
  convolution kernel for one output channel).
- mm_squeeze_fp32_fc: that, with the two small linear layers in float32 outside autocast (no
  casts of their weights per call).

    python benchmarks/block_variants.py --setting c --variants lean reference   # the paper's (c), CPU
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srblock import SqueezeRemember  # noqa: E402
from tests.reference_block import reference_forward  # noqa: E402

LEAN = SqueezeRemember.forward


def _squeeze_mm(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    """The 1x1 squeeze conv as a matrix product: B x C_s x H x W, without a convolution kernel."""
    batch, channels, height, width = x.shape
    weight = block.squeeze.weight.view(block.squeeze_channels, channels)
    bias = block.squeeze.bias
    if not torch.is_autocast_enabled(x.device.type):
        weight, bias = weight.to(x.dtype), bias.to(x.dtype)
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        rows = torch.addmm(bias, x.permute(0, 2, 3, 1).reshape(-1, channels), weight.t())
        return rows.view(batch, height, width, -1).permute(0, 3, 1, 2)
    out = torch.baddbmm(bias.view(1, -1, 1), weight.expand(batch, -1, -1), x.reshape(batch, channels, -1))
    return out.view(batch, -1, height, width)


def _weights(block: SqueezeRemember, squeezed: torch.Tensor, fp32_fc: bool) -> torch.Tensor:
    if squeezed.shape[-2:] != block.size:
        squeezed = F.adaptive_avg_pool2d(squeezed, block.size)
    flat = squeezed.flatten(1)
    if not fp32_fc:
        logits = block.fc2(block.act(block.fc1(flat)))
    else:
        with torch.autocast(flat.device.type, enabled=False):
            logits = block.fc2(block.act(block.fc1(flat.float())))
    if block.log_temperature is not None:
        logits = logits * torch.exp(-block.log_temperature)
    elif block.temperature != 1.0:
        logits = logits / block.temperature
    return F.softmax(logits, dim=-1, dtype=torch.float32)


def addmm(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, block.squeeze(x), fp32_fc=False))


def mm_squeeze(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, _squeeze_mm(block, x), fp32_fc=False))


def mm_squeeze_fp32_fc(block: SqueezeRemember, x: torch.Tensor) -> torch.Tensor:
    return block.remember(x, _weights(block, _squeeze_mm(block, x), fp32_fc=True))


VARIANTS: dict[str, Callable[[SqueezeRemember, torch.Tensor], torch.Tensor]] = {
    "reference": reference_forward,
    "lean": LEAN,
    "addmm": addmm,
    "mm_squeeze": mm_squeeze,
    "mm_squeeze_fp32_fc": mm_squeeze_fp32_fc,
}


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Inside, every SqueezeRemember runs the forward `name`."""
    SqueezeRemember.forward = VARIANTS[name]
    try:
        yield
    finally:
        SqueezeRemember.forward = LEAN


def main() -> None:
    """One of the paper's latency settings timed for each forward (on this machine's device)."""
    import argparse

    from srblock.paper_latency import PAPER_SETTINGS, bench_paper
    from srblock.render import render

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=("a", "b", "c"), default="c", help="the paper's setting (default: c)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["lean", "reference"])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    settings = [s for s in PAPER_SETTINGS if s.name.startswith(f"({args.setting})")][:1]
    rows = []
    for name in args.variants:
        with use(name):
            rows += [
                {"block": name, **r}
                for r in bench_paper(args.device, repeats=args.repeats, warmup=10, settings=settings)
            ]
    print(
        render(
            rows,
            [
                "block",
                "setting",
                "batch",
                "device",
                "plain_ms",
                "sr_ms",
                "overhead_pct",
                "overhead_ci_low_pct",
                "overhead_ci_high_pct",
            ],
        )
    )


if __name__ == "__main__":
    main()
