"""Parameter counts and overheads: the paper's Eq. 1 and the OH column of its tables.

OH is the paper's: the parameters a configuration adds to the plain network (same model, same
classes, no attention, no SR), in % of the plain network. SE/CBAM and SR both count, so
"R18 + CBAM + SR" has OH 1.66% = 0.78% (CBAM) + 0.88% (SR). Models are built on the meta
device: counting even ImageNet models costs no memory and little time.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .block import _size2
from .config import TrainConfig
from .factory import create_model
from .insert import sr_blocks as find_sr_blocks
from .recipes import TABLES, sweeps_for
from .registry import PYTHON_MODEL
from .run_model import build_model
from .spec import DEFAULT_MEMORY_BLOCKS, SRSpec, caller_stacklevel
from .sweeps import expand_sweep

PARAM_COLUMNS = ("name", "sr_at", "base_params", "sr_params", "params", "sr_oh_pct", "oh_pct")
TABLE_COLUMNS = (
    "table",
    "name",
    "M",
    "P",
    "base_params",
    "sr_params",
    "params",
    "sr_oh_pct",
    "oh_pct",
    "paper_oh_pct",
)


def sr_param_count(
    channels: int,
    size: int | tuple[int, int],
    spec: SRSpec | int | None = None,
    hidden: int | None = None,
    squeeze_channels: int | None = None,
) -> int:
    """Parameters an SR block of `spec` (P unset: 4, as the block takes) adds at a C x H x W stage
    (the paper's Eq. 1, and log T where T is learned); the memory P*C*H*W dominates. Numbers in the
    spec's place (P, h, C_s: earlier releases') are read with a FutureWarning."""
    if not isinstance(spec, SRSpec) and (
        spec is not None or hidden is not None or squeeze_channels is not None
    ):
        warnings.warn(
            "sr_param_count: pass the block as an SRSpec (sr_param_count(C, size, SRSpec(memory_blocks=P, "
            "hidden=h, squeeze_channels=C_s))); numbers in its place stop working in the next release",
            FutureWarning,
            stacklevel=caller_stacklevel(),
        )
        spec = SRSpec(memory_blocks=spec, hidden=hidden or 8, squeeze_channels=squeeze_channels or 1)
    spec = spec or SRSpec()
    height, width = _size2(size)
    c, cs, h, p = channels, spec.squeeze_channels, spec.hidden, spec.memory_blocks or DEFAULT_MEMORY_BLOCKS
    return (
        c * cs
        + cs
        + cs * height * width * h
        + h
        + h * p
        + p
        + p * c * height * width
        + spec.learn_temperature
    )


def count_params(model: nn.Module) -> int:
    """Number of parameters of `model`, each shared tensor once."""
    return sum(p.numel() for p in model.parameters())


@functools.cache
def plain_params(name: str, num_classes: int | None = None, in_chans: int | None = None) -> int:
    """Parameters of the plain model (no attention, no SR): the base of the OH column."""
    with torch.device("meta"):
        return count_params(create_model(name, num_classes=num_classes, in_chans=in_chans))


def overhead(model: nn.Module, base: int) -> dict[str, int | float]:
    """Parameters of `model`, of its SR blocks, and both overheads (in %) over `base`, the plain model's."""
    params = count_params(model)
    sr = sum(count_params(b) for _, b in find_sr_blocks(model))
    return {
        "base_params": base,
        "sr_params": sr,
        "params": params,
        "sr_oh_pct": 100.0 * sr / base,
        "oh_pct": 100.0 * (params - base) / base,
    }


def config_overhead(cfg: TrainConfig, model: nn.Module | None = None) -> dict[str, int | float]:
    """`overhead` of a run's model (built on the meta device if not given) over its plain model."""
    if model is None:
        with torch.device("meta"):
            model = build_model(cfg)
    if cfg.model.startswith(PYTHON_MODEL):  # a model given in Python: its plain part is all but SR
        return overhead(model, count_params(model) - sum(count_params(b) for _, b in find_sr_blocks(model)))
    return overhead(model, plain_params(cfg.model, cfg.num_classes(), cfg.input_size()[0]))


def _label(name: str, attn: str | None, reg: str | None, sr_stage: Any) -> str:
    parts = [name] + [p.upper() for p in (reg, attn) if p] + (["SR"] if sr_stage is not None else [])
    return " + ".join(parts)


def _where(model: nn.Module) -> str:
    """Where a model's SR blocks sit, with their feature-map size and P."""
    return ", ".join(
        f"{n.removesuffix('.sr')} ({b.channels}x{b.size[0]}x{b.size[1]}, P={b.memory_blocks})"
        for n, b in find_sr_blocks(model)
    )


def param_count(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    attn: str | None = None,
    reg: str | None = None,
    sr_stage: int | str | None = None,
    sr: SRSpec | None = None,
    input_size: Sequence[int] | None = None,
) -> dict[str, Any]:
    """One row: parameters of a configuration, of its plain model, of its SR blocks, and OH.
    The spec's P defaults to the model's own."""
    with torch.device("meta"):
        model = create_model(
            name,
            num_classes=num_classes,
            in_chans=in_chans,
            attn=attn,
            reg=reg,
            sr_stage=sr_stage,
            sr=sr,
            input_size=input_size,
        )
    return {
        "name": _label(name, attn, reg, sr_stage),
        "sr_at": _where(model),
        **overhead(model, plain_params(name, num_classes, in_chans)),
    }


def table_rows(table: str) -> list[dict[str, Any]]:
    """Every row of the paper's tables for `table` (cifar100: I and II, cifar10: V, imagenet: III,
    cityscapes: IV), each counted as `srblock sweep` would train it."""
    sweeps = sweeps_for(table)
    if not sweeps:
        raise ValueError(f"unknown table {table!r}; choose one of: {', '.join(TABLES)}")
    rows = []
    for sweep in sweeps:
        for row in expand_sweep(sweep):
            cfg = row.config
            with torch.device("meta"):
                model = build_model(cfg)
            rows.append(
                {
                    "table": row.table,
                    "name": row.name,
                    "M": cfg.sr_stage,
                    "P": cfg.sr.memory_blocks,
                    "sr_at": _where(model),
                    **config_overhead(cfg, model),
                    "paper_oh_pct": (row.paper or {}).get("oh"),
                }
            )
    return rows
