"""`SRSpec`: everything that describes one SR block and how it trains, in one frozen dataclass.

It is passed whole: `SqueezeRemember(channels, size, spec)`, `add_sr(model, stage, spec)`,
`create_model(name, sr_stage=3, sr=spec)`, a run config's `cfg.sr`. Where settings travel as flat
keys (recipes, `--set`, command-line flags, timm's keyword arguments) each field `f` is the key
`sr_<f>`; `spec_from_keys` turns such keys into a spec in one place.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import check, setting

DEFAULT_MEMORY_BLOCKS = 4  # P where neither the caller nor the model chooses
MEMORY_INITS = ("zeros", "normal", "prototypes")


@dataclass(frozen=True)
class SRSpec:
    """One SR block (the paper's defaults) and how it trains. Fields marked `arch` shape the block;
    the others are read by the training loop. A field's `slug` marks it in a run folder's name
    where it differs from its default (in this order); its `needs` rule is checked on the spec."""

    memory_blocks: int | None = setting(
        None, "P, memory blocks (null: the model's own, else 4)", range="[1, inf)", role="sr", arch=True
    )
    hidden: int = setting(8, "h, hidden neurons of the FC net", range="[1, inf)", role="sr", arch=True)
    squeeze_channels: int = setting(
        1, "C_s, channels of the 1x1 squeeze conv", range="[1, inf)", role="sr", arch=True, slug="cs"
    )
    act: str | None = setting(
        "relu", "activation between the linear layers: a timm name, or null for none", role="sr", arch=True,
        slug="act",
    )  # fmt: skip
    memory_init: str = setting(
        "zeros", "how the memory starts: zeros (the paper's), normal, prototypes (docs/memory.md)",
        choices=MEMORY_INITS, role="sr", slug="init_",
    )  # fmt: skip
    memory_init_scale: float = setting(
        0.3, "normal / prototypes: the memory's RMS over the block input's", range="(0, 100]", role="sr",
        slug="scale",
        needs=(lambda s: s.memory_init != "zeros", "does nothing with sr_memory_init=zeros (the paper's "
               "memory starts at zero): set sr_memory_init=normal or prototypes"),
    )  # fmt: skip
    memory_lr_mult: float = setting(
        1.0, "the memory's lr over the SR blocks'", range="(0, inf)", role="sr", slug="mlr"
    )
    memory_weight_decay: float | None = setting(
        None, "the memory's weight decay (null: weight_decay)", range="[0, inf)", role="sr", slug="mwd"
    )
    temperature: float = setting(
        1.0,
        "T of softmax(logits / T) (1: the paper's)",
        range="[0.001, 1000]",
        role="sr",
        slug="T",
        arch=True,
    )
    learn_temperature: bool = setting(
        False, "learn T (as log T) from temperature on", role="sr", slug="Tlearned", arch=True
    )
    diversity: float = setting(
        0.0, "weight of the image-block mutual-information loss term (0: none)", range="[0, inf)",
        role="sr", slug="div",
    )  # fmt: skip
    lr_mult: float = setting(
        1.0, "the SR blocks' lr over the rest's", range="(0, inf)", role="sr", slug="srlr"
    )

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(SRSpec)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "act" and isinstance(value, type):  # a module class, from Python
                continue
            checked = check(field.name, field, hints[field.name], value, "SRSpec")
            object.__setattr__(self, field.name, checked)
        if isinstance(self.act, str):
            from timm.layers import get_act_layer

            try:
                get_act_layer(self.act)
            except (KeyError, ValueError):
                raise ValueError(
                    f"SRSpec: unknown act {self.act!r}: give an activation timm knows (relu, gelu, silu...), "
                    "a module class, or None"
                ) from None

    def arch(self) -> dict[str, Any]:
        """The fields that shape the block (its constructor's)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("arch")}

    def keys(self) -> dict[str, Any]:
        """The spec as flat `sr_<field>` keys."""
        return {f"sr_{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}


SPEC_KEYS = tuple(f"sr_{f.name}" for f in dataclasses.fields(SRSpec))
# keys of earlier releases, read for one more release (run folders' config.yaml: always)
RENAMED_KEYS = {
    "sr_blocks": "sr_memory_blocks",
    "sr_squeeze": "sr_squeeze_channels",
    "sr_temperature_learned": "sr_learn_temperature",
}


def caller_stacklevel() -> int:
    """The `stacklevel` of a warning that points at the first frame outside srblock: the user's
    line to change, not the library's."""
    package = Path(__file__).resolve().parent
    frame, level = sys._getframe(1), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(package):
        frame, level = frame.f_back, level + 1
    return level


def renamed(key: str, source: str, warn: bool = True) -> str:
    """The current name of a key, with a FutureWarning where an old name was used."""
    if key not in RENAMED_KEYS:
        return key
    if warn:
        warnings.warn(
            f"{source}: {key} is now called {RENAMED_KEYS[key]}; the old name stops working in the "
            "next release",
            FutureWarning,
            stacklevel=caller_stacklevel(),
        )
    return RENAMED_KEYS[key]


def as_spec(value: Any, where: str) -> SRSpec | None:
    """A spec from what callers pass: an SRSpec, a dict of its fields, None, or (earlier releases'
    third positional argument) an int P, with a FutureWarning."""
    if value is None or isinstance(value, SRSpec):
        return value
    if isinstance(value, dict):
        return SRSpec(**value)
    if isinstance(value, int) and not isinstance(value, bool):
        warnings.warn(
            f"{where}: pass P as SRSpec(memory_blocks={value}); a number in the spec's place stops "
            "working in the next release",
            FutureWarning,
            stacklevel=caller_stacklevel(),
        )
        return SRSpec(memory_blocks=value)
    raise TypeError(f"{where}: the SR settings are an SRSpec (or a dict of its fields), got {value!r}")


def spec_from_keys(values: Mapping[str, Any], source: str, base: SRSpec | None = None) -> SRSpec:
    """A spec from flat keys (`sr_hidden=16`; old names warn); keys not of the spec are refused.
    None leaves a field at `base`'s value, except where None is a value of its own (P: the
    model's choice; act: none; memory_weight_decay: weight_decay's)."""
    optional = {f.name for f in dataclasses.fields(SRSpec) if f.default is None or f.name == "act"}
    fields = {}
    for key, value in values.items():
        name = renamed(key, source)
        if name not in SPEC_KEYS:
            raise ValueError(f"{source}: {key} is not an SR setting; they are {', '.join(SPEC_KEYS)}")
        if value is not None or name.removeprefix("sr_") in optional:
            fields[name.removeprefix("sr_")] = value
    try:
        return dataclasses.replace(base or SRSpec(), **fields)
    except ValueError as err:
        raise ValueError(str(err).replace("SRSpec:", f"{source}:", 1)) from None


def spec_from_legacy(kwargs: dict[str, Any], where: str, base: SRSpec | None = None) -> SRSpec | None:
    """Pops the block's keyword arguments of earlier releases (memory_blocks=, hidden=...) from
    `kwargs` into a spec (None where there were none), with a FutureWarning naming SRSpec."""
    names = [k for k in list(kwargs) if k in {f.name for f in dataclasses.fields(SRSpec)}]
    if not names:
        return None
    warnings.warn(
        f"{where}: pass the SR settings as an SRSpec ({', '.join(f'{k}=...' for k in names)} -> "
        f"SRSpec({', '.join(f'{k}=...' for k in names)})); the keyword arguments stop working in the "
        "next release",
        FutureWarning,
        stacklevel=caller_stacklevel(),
    )
    return dataclasses.replace(base or SRSpec(), **{k: kwargs.pop(k) for k in names})
