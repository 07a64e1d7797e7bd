"""Rows of results as a Markdown table, CSV or JSON: one renderer for every command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("md", "csv", "json")


def cell_text(value: Any) -> str:
    """A value as every table writes it (the command line's and the report's)."""
    if value is None:
        return ""
    if isinstance(value, float):  # two decimals; a small statistic (a memory ratio) keeps two digits
        return f"{value:.1e}" if 0 < abs(value) < 0.005 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str = "md") -> str:
    """`rows` as text in `fmt`: md (aligned, for reading), csv or json (raw values, for tools)."""
    if fmt == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    cells = [[cell_text(row.get(c)) for c in columns] for row in rows]
    widths = [max([3, len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(row.get(c)) for row in rows) and bool(rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric)) + " |"
    )
    return "\n".join([line(columns), rule] + [line(r) for r in cells])


def _is_number(value: Any) -> bool:
    """A number, or a number already written out (right-aligned like one)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
