"""torch.compile for a run: the mode it trains in, its caches in a folder that outlives the
process (inductor's FX graphs and AOT autograd's), and the one line that names a damaged cache.

`compile: auto` decides the mode (config.compile_plan); a folder the cache cannot go to turns the
run eager, with one line saying which variable to set (startup.py sets an unusable
TORCHINDUCTOR_CACHE_DIR aside before torch is imported, so commands that never compile run).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.fabric import Fabric
from torch import nn

from .. import startup

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


def compiled(model: nn.Module, mode: str | None) -> nn.Module:
    """`model` torch.compiled in `mode` (None: as it is; `compile_mode` has set up its cache);
    static shapes: a last smaller batch gets a graph of its own rather than turning every graph
    dynamic."""
    if mode is None:
        return model
    return torch.compile(model, mode=mode, dynamic=False)


# what torch says of a compile cache it cannot read back (a file cut short, or overwritten)
CACHE_DAMAGE = ("Failed to import", "UnicodeDecodeError", "UnpicklingError", "EOFError")


@contextlib.contextmanager
def damaged_cache_said() -> Iterator[None]:
    """A failure of torch.compile to read its own cache back (torch's `InductorError ... Failed to
    import`, with a UnicodeDecodeError) becomes one line naming the folder to delete; any other
    error, compile's included, is left as it is."""
    try:
        yield
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        if not type(err).__module__.startswith("torch._") or not any(s in text for s in CACHE_DAMAGE):
            raise
        reason = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)[:200]
        cache = os.environ.get(startup.CACHE_VARIABLE, "torch's cache folder")
        raise ValueError(
            f"torch.compile failed ({reason}): its cache {cache} looks damaged: delete that folder and run "
            "again, or train eager with --set compile=false"
        ) from None


def compile_mode(fabric: Fabric, mode: str | None) -> str | None:
    """The torch.compile mode a run trains in: `mode`, its caches in a folder that outlives the
    process, or None (eager) where no folder can hold them; a cache folder other than the one
    asked for is said in one line."""
    if mode is None:
        return None
    cache, note = use_compile_cache()
    if note and note not in _SAID:  # once per process, not once per seed of a stack
        _SAID.add(note)
        fabric.print(f"srblock: {note}", file=sys.stderr)
    return mode if cache is not None else None


_SAID: set[str] = set()
