"""A bar for work a person waits on at the command line (analyze, report, predict, export): on a
terminal, shown once the work has taken `delay` seconds (tqdm's delay), gone when it ends; never in
a log file, which would fill with carriage returns."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def working(items: Iterable[T], what: str, total: int | None = None, delay: float = 2.0) -> Iterator[T]:
    """`items`, with a bar saying `what` is being done (and how far, where `total` or len() says)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    yield from tqdm(
        items, desc=what, total=total, delay=delay, leave=False, disable=not sys.stderr.isatty(), unit=""
    )
