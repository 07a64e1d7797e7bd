"""metrics.csv: a run's table of one row per epoch (or evaluation), appended as it trains; a
resumed run drops the rows after its checkpoint, so that each epoch is in it once."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .atomic_files import write_text_atomic

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
SEG_METRIC_COLUMNS = ("iteration", "lr", "train_loss", "val_miou", "val_macc", "seconds")


class MetricsLog:
    """metrics.csv, one row per epoch (or evaluation); a resumed run first drops the rows after its
    checkpoint, those whose first column (epoch, iteration) is not below `start`."""

    def __init__(self, path: Path, start: int, columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
        self.path, self.columns = path, columns
        rows = (
            [r for r in metrics_rows(path, columns) if float(r[columns[0]]) < start] if path.exists() else []
        )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, text.getvalue())  # a kill while rewriting leaves the old file

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n").writerow(row)


def metrics_rows(path: Path, columns: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """metrics.csv's rows as written, each value a number or empty, or a one-line error naming the
    file; epochs numbered from 1 (a file of an earlier release, numbered from 0, is read so)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
        for value in (v for row in rows for v in row.values()):
            if value not in ("", None):
                float(value)  # a ValueError (or TypeError, for a row too long) names the file below
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as err:
        reason = str(err).splitlines()[0][:100]
        raise ValueError(
            f"{path} is not a metrics table ({reason}): delete it; --resume writes it anew"
        ) from None
    if fields[:1] == ["epoch"] and rows and rows[0]["epoch"] in ("0", "0.0"):  # an earlier release's: from 0
        for row in rows:
            row["epoch"] = str(int(float(row["epoch"])) + 1) if row["epoch"] else row["epoch"]
    # a run resumed by a newer version may log more columns than it started with: its old rows stay
    if columns is not None and (not set(fields) <= set(columns) or fields[:1] != list(columns[:1])):
        raise ValueError(
            f"{path} has columns {', '.join(fields) or 'none'}, not {', '.join(columns)}: delete it"
        )
    return rows
