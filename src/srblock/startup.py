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
