"""Results of many runs as the paper reports them: mean ± sample std over seeds per configuration."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .runs import RESULT_FILE, read_result

# the test metrics a result.json may hold: classification, then segmentation (whole image, multi-scale)
METRICS = ("test_acc", "test_top5", "test_miou", "test_macc", "test_miou_ms", "test_macc_ms")


def _present(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics that at least one of `rows` has."""
    return [m for m in METRICS if any(r.get(m) is not None for r in rows)]


ROW_COLUMNS = ("table", "name", "M", "P", "seeds")  # what a row is: the paper's table, row and (M, P)


def md_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The readable table's columns: the metrics these rows have, as mean ± std."""
    return (*ROW_COLUMNS, *_present(rows), "oh_pct", "paper_acc", "paper_oh_pct", "folder")


def raw_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The CSV/JSON columns: each metric's mean and std as numbers."""
    stats = [f"{m}_{s}" for m in _present(rows) for s in ("mean", "std")]
    paper = ("paper_acc_mean", "paper_acc_std", "paper_oh_pct")
    return (*ROW_COLUMNS, *stats, "oh_pct", "sr_oh_pct", *paper, "folder")


def finished_results(root: Path) -> list[dict[str, Any]]:
    """Every result.json under `root` (none if no run there has finished), each with its folder."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give the --out folder of `srblock train` or `sweep`")
    return [
        {**read_result(path.parent), "folder": str(path.parent)} for path in sorted(root.rglob(RESULT_FILE))
    ]


def collect_results(root: Path) -> list[dict[str, Any]]:
    """Every result.json under `root`, each with the folder it came from; at least one."""
    results = finished_results(root)
    if not results:
        raise ValueError(f"no {RESULT_FILE} under {root}: no run there has finished yet")
    return results


def _pm(mean: float | None, std: float | None) -> str | None:
    if mean is None:
        return None
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration (the seeds' shared parent folder), in the paper's row order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(str(Path(result["folder"]).parent), []).append(result)
    rows = []
    for folder, runs in groups.items():
        first = runs[0]
        cfg, paper = first.get("config", {}), first.get("paper") or {}
        scores: dict[str, Any] = {}
        for metric in METRICS:
            values = [r[metric] for r in runs if r.get(metric) is not None]
            if values:
                mean = statistics.fmean(values)
                std = statistics.stdev(values) if len(values) > 1 else None  # sample std, as the paper's
                scores.update({metric: _pm(mean, std), f"{metric}_mean": mean, f"{metric}_std": std})
        rows.append(
            {
                "table": first.get("table"),
                "name": first.get("name") or Path(folder).name,
                "M": cfg.get("sr_stage"),
                "P": cfg.get("sr_blocks") if cfg.get("sr_stage") is not None else None,
                "seeds": len(runs),
                **scores,
                "oh_pct": first.get("oh_pct"),
                "sr_oh_pct": first.get("sr_oh_pct"),
                "paper_acc": _pm(paper.get("acc"), paper.get("std")),
                "paper_acc_mean": paper.get("acc"),
                "paper_acc_std": paper.get("std"),
                "paper_oh_pct": paper.get("oh"),
                "folder": folder,
                "_order": (str(Path(folder).parent), first.get("row", 0), folder),
            }
        )
    rows.sort(key=lambda r: r.pop("_order"))
    return rows
