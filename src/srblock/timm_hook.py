"""The zoo in timm's registry as soon as srblock and timm are both imported, whichever comes first,
without `import srblock` importing timm (or torch) itself: timm's own scripts and
`timm.create_model("srblock_<name>")` after `import srblock` find the models (timm_models.py)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any


def _initializing(module: ModuleType | None) -> bool:
    """Whether a module is being imported (importlib marks its spec so while the module runs)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def register_if_ready() -> None:
    """Registers the zoo with timm once timm is imported: now if srblock's zoo is imported (whole),
    else by importing it, which registers at its end (zoo_imported). While one of srblock's modules
    is half imported (one that brought timm in), the zoo waits for the next use of srblock."""
    if "srblock.timm_models" in sys.modules or "timm" not in sys.modules:
        return
    zoo = sys.modules.get("srblock.models")
    if zoo is None:
        srblock = [m for name, m in list(sys.modules.items()) if name.startswith("srblock.")]
        if not any(_initializing(m) for m in srblock):
            importlib.import_module("srblock.models")
    elif not _initializing(zoo):
        importlib.import_module("srblock.timm_models")


def zoo_imported() -> None:
    """At the end of srblock.models, the zoo whole: in timm's registry if timm is imported (it is
    when the zoo is, as the zoo's layers are timm's)."""
    if "timm" in sys.modules:
        importlib.import_module("srblock.timm_models")


class _AfterTimm(importlib.abc.MetaPathFinder):
    """Finds timm as the other finders do, and registers the zoo once timm's package has run; it
    stays until then (a probe such as importlib.util.find_spec("timm") imports nothing)."""

    searching = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "timm" or self.searching:
            return None
        self.searching = True  # (the other finders find it)
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def run_then_register(module: ModuleType) -> None:
                run(module)
                if self in sys.meta_path:  # (timm is imported once)
                    sys.meta_path.remove(self)
                register_if_ready()

            spec.loader.exec_module = run_then_register  # type: ignore[method-assign]
        return spec


def register_with_timm_when_imported() -> None:
    """At `import srblock`: registers now if timm is imported already, else once it is."""
    if "timm" in sys.modules:
        register_if_ready()
    elif not any(isinstance(finder, _AfterTimm) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimm())
