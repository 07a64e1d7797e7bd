"""The zoo in timm's registry as soon as srblock's zoo and timm are both imported, whichever comes
first, without `import srblock` importing timm (or torch) itself: timm's own scripts and
`timm.create_model("srblock_<name>")` after `import srblock` find the models (timm_models.py).
The zoo knows nothing of this: an import finder sees timm's package and the zoo's finish."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

ZOO = "srblock.models"
WATCHED = ("timm", ZOO)  # the two imports after either of which the zoo may join timm's registry


def _initializing(module: ModuleType | None) -> bool:
    """Whether a module is being imported (importlib marks its spec so while the module runs)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register() -> None:
    """The zoo (whole) into timm's registry. After the zoo's own import, importlib still marks it
    as importing, but its body has run: timm_models takes its names from it then (the import lock
    lets the thread that holds it back in), as from any whole module."""
    if "srblock.timm_models" not in sys.modules:
        importlib.import_module("srblock.timm_models")


def register_if_ready() -> None:
    """Registers the zoo with timm once timm is imported: now if the zoo is imported (whole), else by
    importing it first. While one of srblock's modules is half imported (one that brought timm in),
    the zoo waits for its own import to end or the next use of srblock."""
    if "srblock.timm_models" in sys.modules or "timm" not in sys.modules:
        return
    zoo = sys.modules.get(ZOO)
    if zoo is None:
        srblock = [m for name, m in list(sys.modules.items()) if name.startswith("srblock.")]
        if any(_initializing(m) for m in srblock):
            return
        importlib.import_module(ZOO)
    if not _initializing(sys.modules[ZOO]):
        _register()


def _finished(name: str) -> None:
    """After timm's package or the zoo has run (the zoo is whole even as importlib still marks it)."""
    if name == ZOO:
        if "timm" in sys.modules and not _initializing(sys.modules["timm"]):
            _register()
    else:
        try:
            register_if_ready()
        except ValueError:  # (a name the zoo takes, registered before it): said at the zoo's next use,
            pass  # not as `import timm` failing


class _Watch(importlib.abc.MetaPathFinder):
    """Finds timm and the zoo as the other finders do, and calls `_finished` once each has run; it
    stays until both have (a probe such as importlib.util.find_spec("timm") imports nothing)."""

    def __init__(self) -> None:
        self.searching = False
        self.waiting = {name for name in WATCHED if name not in sys.modules}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.waiting or self.searching:
            return None
        self.searching = True  # (the other finders find it)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def run_then_register(module: ModuleType) -> None:
                run(module)
                self.waiting.discard(fullname)
                if not self.waiting and self in sys.meta_path:
                    sys.meta_path.remove(self)
                _finished(fullname)

            spec.loader.exec_module = run_then_register  # type: ignore[method-assign]
        return spec


def register_with_timm_when_imported() -> None:
    """At `import srblock`: registers now if timm is imported already, else once it is."""
    if "timm" in sys.modules:
        register_if_ready()
    elif not any(isinstance(finder, _Watch) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Watch())
