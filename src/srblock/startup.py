"""Where the time goes before a run's first training step (`srblock train --verbose`).

The clock starts when srblock starts importing (the first line of its `__init__`, before torch);
the code marks each phase as it ends (`mark("data")`), and the training loop prints `report()`
at its first step. One process, one clock: a second run in the same process marks on from the
end of the first (its report says so by its phases).
"""

from __future__ import annotations

import os
import sys
import time

_STARTED = time.perf_counter()
_marks: list[tuple[str, float]] = []
verbose = False  # set by `--verbose`: the training loop prints report() at its first step


def unusable_folder(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be made or written at `path` (None: it can; it is made, as torch would
    make it: permissions alone do not say, for root, whether /proc or /sys take one)."""
    folder = os.path.abspath(os.path.expanduser(path))
    existing = folder
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        return f"{folder} cannot be made: {err.strerror or err}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} cannot be written"
    return None


# torch._dynamo makes TORCHINDUCTOR_CACHE_DIR's folder as it is imported (timm imports it through
# torchvision): one it cannot make stops every command, `srblock table` too, with a traceback. A
# command that never compiles should not care, so the variable is set aside here, before torch is
# imported; a run that compiles says so in one line (train/compiling.py: use_compile_cache).
CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
_SET_ASIDE = "SRBLOCK_CACHE_SET_ASIDE"  # how this process's children (--parallel runs) learn of it
cache_set_aside: tuple[str, str] | None = None  # (the variable's value, why it was set aside)
if os.environ.get(CACHE_VARIABLE) and (_why := unusable_folder(os.environ[CACHE_VARIABLE])):
    cache_set_aside = (os.environ.pop(CACHE_VARIABLE), _why)
    os.environ[_SET_ASIDE] = "\t".join(cache_set_aside)
elif "\t" in os.environ.get(_SET_ASIDE, ""):  # (the variable now holds what torch's import put there)
    cache_set_aside = tuple(os.environ[_SET_ASIDE].split("\t", 1))  # type: ignore[assignment]


def _interrupted_while_starting(kind: type[BaseException], value: BaseException, tb: object) -> None:
    """Ctrl-C before the command's own handler is in place (while torch imports): one line."""
    if not issubclass(kind, KeyboardInterrupt):
        _excepthook(kind, value, tb)
        return
    print("srblock: interrupted while starting; nothing was written", file=sys.stderr, flush=True)
    os._exit(130)


# the `srblock` command (or `python -m srblock...`), not a program that imports srblock
_excepthook = sys.excepthook
if sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") in ("srblock", "srblock.exe"):
    sys.excepthook = _interrupted_while_starting


def mark(phase: str) -> None:
    """The phase `phase` ends now."""
    _marks.append((phase, time.perf_counter()))


def seconds() -> float:
    """Seconds since srblock started importing."""
    return time.perf_counter() - _STARTED


def report(last: str = "first step") -> str:
    """One line: each phase's seconds, then when `last` came: "start-up: imports 4.1 s, ..."."""
    parts, before = [], _STARTED
    for phase, at in _marks:
        parts.append(f"{phase} {at - before:.1f} s")
        before = at
    return f"start-up: {', '.join(parts)}; {last} at {seconds():.1f} s"
