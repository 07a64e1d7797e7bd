"""srblock: the Squeeze-and-Remember block for convolutional networks.

`import srblock` is quick: each public name is imported when first used (a module `__getattr__`,
as SciPy and scikit-image do), so the command line answers `--help` without importing torch. The
zoo joins timm's registry (`srblock_<name>`) as soon as both srblock and timm are imported, in
either order (timm_hook.py)."""

from . import startup  # noqa: F401, I001  (first: its clock starts before torch is imported)
import importlib
import importlib.util
from typing import Any

from .provenance import own_version
from .timm_hook import register_if_ready, register_with_timm_when_imported

__version__ = own_version()

_LAZY = {  # public name -> the module that defines it
    "SRSpec": "spec",
    "SqueezeRemember": "block",
    "add_sr": "insert",
    "count_params": "params",
    "create_model": "factory",
    "fit": "fitting",
    "init_weights": "models",
    "list_models": "models",
    "register_model": "models",
    "remove_sr": "insert",
    "sr_blocks": "insert",
    "sr_bypassed": "insert",
    "sr_param_count": "params",
    "stage_names": "stages",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # (found directly from now on)
        register_if_ready()  # (an import of timm on the way waits for it)
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        module = importlib.import_module(f"{__name__}.{name}")  # a submodule: srblock.models, ...
        register_if_ready()
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_with_timm_when_imported()
