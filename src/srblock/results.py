"""Results of many runs as the paper reports them: mean ± sample std over seeds per configuration."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from .config import CONFIGS
from .run_folder import RESULT_FILE, RunFolder, unfinished_runs
from .spec import RENAMED_KEYS

# the test metrics a result.json may hold: classification, then segmentation (whole image, multi-scale),
# then what the SR memory does (the accuracy with the blocks bypassed, and memory.py's statistics)
METRICS = (
    "test_acc",
    "test_top5",
    "test_miou",
    "test_macc",
    "test_miou_ms",
    "test_macc_ms",
    "test_acc_bypassed",
    "test_miou_bypassed",
    "sr_mem_ratio",
    "sr_weight_entropy",
    "sr_weight_class_sep",
)


def _present(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics that at least one of `rows` has."""
    return [m for m in METRICS if any(r.get(m) is not None for r in rows)]


ROW_COLUMNS = ("table", "name", "M", "P", "seeds")  # what a row is: the paper's table, row and (M, P)
PAIRED_COLUMNS = ("vs_plain_mean", "vs_plain_ci_low", "vs_plain_ci_high", "vs_plain_p", "vs_plain_seeds")
# keys that do not make two runs different experiments, or that only the SR block has
# a plain twin is the same experiment without the SR block: the same keys but seed, how the runs
# were run (role "execution") and the SR block's own (role "sr", and its keys' earlier names)
_NOT_COMPARED = frozenset(
    ["seed", *RENAMED_KEYS]
    + [
        key
        for cls in CONFIGS
        for key, f in cls.key_fields().items()
        if f.metadata.get("role") in ("sr", "execution")
    ]
)


def tested_on(result: dict[str, Any]) -> str | None:
    """What a run's test scores are where they are not the test split's (None where they are): a
    folder without test/ scores its validation split, with the last epoch's checkpoint (runs from
    before that rule scored the checkpoint chosen on those very images, and say so)."""
    if result.get("tested_split", "test") == "test":
        return None
    if result.get("tested_checkpoint") == "last":
        return "val, last epoch"
    return "val, chosen on val"


def md_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The readable table's columns: the metrics these rows have, as mean ± std, and SR against plain."""
    columns = (*ROW_COLUMNS, "tested", *_present(rows), "vs_plain", "oh_pct", "paper_acc", "paper_oh_pct")
    columns = (*columns, "folder")
    return tuple(c for c in columns if any(r.get(c) is not None for r in rows))  # no empty columns


def raw_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The CSV/JSON columns: each metric's mean and std as numbers, and the paired comparison."""
    stats = [f"{m}_{s}" for m in _present(rows) for s in ("mean", "std")]
    paper = ("paper_acc_mean", "paper_acc_std", "paper_oh_pct")
    return (*ROW_COLUMNS, "tested", *stats, *PAIRED_COLUMNS, "oh_pct", "sr_oh_pct", *paper, "folder")


def _without_sr(config: dict[str, Any]) -> tuple:
    """What a configuration is besides its SR block: the key of its plain twin."""
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in _NOT_COMPARED))


def paired_difference(sr: dict[int, float], plain: dict[int, float]) -> dict[str, Any] | None:
    """SR minus plain over the seeds both have (seed -> score): the mean difference, its paired 95%
    confidence interval and the two-sided p-value of a paired t-test (scipy), and the seed count.
    Seeds pair because a seed fixes the data split, order and augmentation of both runs."""
    seeds = sorted(set(sr) & set(plain))
    if not seeds:
        return None
    diffs = [sr[s] - plain[s] for s in seeds]
    mean = statistics.fmean(diffs)
    if len(seeds) < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "p": None, "seeds": len(seeds)}
    from scipy import stats

    if statistics.pstdev(diffs) == 0:  # the same difference on every seed: no spread, so no test
        return {"mean": mean, "ci_low": None, "ci_high": None, "p": None, "seeds": len(seeds)}
    test = stats.ttest_rel([sr[s] for s in seeds], [plain[s] for s in seeds])
    interval = test.confidence_interval(0.95)
    return {
        "mean": mean,
        "ci_low": float(interval.low),
        "ci_high": float(interval.high),
        "p": float(test.pvalue),
        "seeds": len(seeds),
    }


def _verdict(diff: dict[str, Any]) -> str:
    """The paired difference as a reader should take it: inside the noise unless its interval excludes 0."""
    if diff["ci_low"] is None:
        why = "1 seed" if diff["seeds"] == 1 else f"{diff['seeds']} seeds, the same difference on each"
        return f"{diff['mean']:+.2f} ({why}: no interval)"
    reading = (
        "within noise"
        if diff["ci_low"] <= 0 <= diff["ci_high"]
        else ("better" if diff["mean"] > 0 else "worse")
    )
    return (
        f"{diff['mean']:+.2f} [{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}] "
        f"p={diff['p']:.2g}, {diff['seeds']} seeds: {reading}"
    )


def finished_results(root: Path) -> list[dict[str, Any]]:
    """Every result.json under `root` (none if no run there has finished), each with its folder."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give the --out folder of `srblock train` or `sweep`")
    return [
        {**RunFolder(path.parent).result(), "folder": str(path.parent)}
        for path in sorted(root.rglob(RESULT_FILE))
    ]


def left_out(root: Path) -> list[str]:
    """One line for each run under `root` a table leaves out (stopped as diverged), and one for the
    runs not finished yet, so a mean over fewer seeds than trained is never silent."""
    stopped, running = [], []
    for folder in unfinished_runs(Path(root)):
        reason = RunFolder(folder).diverged()
        (stopped if reason else running).append(f"left out {folder}: {reason}" if reason else str(folder))
    if running:
        stopped.append(f"left out {len(running)} unfinished runs (no {RESULT_FILE}), e.g. {running[0]}")
    return stopped


HEADLINE = ("test_acc", "test_miou")  # a run's score: one that is not a number leaves its mean


def _scored(result: dict[str, Any]) -> bool:
    """Whether a run's score (its first HEADLINE metric) is a number a mean can take."""
    metric = next((m for m in HEADLINE if m in result), None)
    return metric is None or _number(result[metric])


def uncounted(results: list[dict[str, Any]]) -> list[str]:
    """One line for each finished run whose score is not a number (NaN, text): it is left out of its
    configuration's mean, and of the seeds its `seeds` column counts, which a table must not leave
    unsaid."""
    return [
        f"{r['folder']}'s {metric} is {r[metric]!r}: left out of its configuration's mean"
        for r in results
        for metric in HEADLINE
        if metric in r and not _number(r[metric])
    ]


def collect_results(root: Path) -> list[dict[str, Any]]:
    """Every result.json under `root`, each with the folder it came from; at least one."""
    results = finished_results(root)
    if not results:
        raise ValueError(f"no {RESULT_FILE} under {root}: no run there has finished yet")
    return results


def _pm(mean: float | None, std: float | None) -> str | None:
    """mean ± std, to two decimals (two significant digits for values below 1, e.g. a memory ratio)."""
    if mean is None:
        return None
    fmt = ".2f" if abs(mean) >= 1 or mean == 0 else ".2g"
    return f"{mean:{fmt}} ± {std:{fmt}}" if std is not None else f"{mean:{fmt}}"


def _number(value: Any) -> bool:
    """A value the statistics can take: a finite int or float (a NaN entropy of P = 1 is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
            values = [r[metric] for r in runs if _number(r.get(metric))]  # a NaN or a text: left out
            if values:
                mean = statistics.fmean(values)
                std = statistics.stdev(values) if len(values) > 1 else None  # sample std, as the paper's
                scores.update({metric: _pm(mean, std), f"{metric}_mean": mean, f"{metric}_std": std})
        rows.append(
            {
                "table": first.get("table"),
                "name": first.get("name") or Path(folder).name,
                "M": cfg.get("sr_stage"),
                "P": cfg.get("sr_memory_blocks", cfg.get("sr_blocks"))
                if cfg.get("sr_stage") is not None
                else None,
                "seeds": sum(map(_scored, runs)),  # the seeds its mean is over
                "tested": "; ".join(sorted({t for t in map(tested_on, runs) if t})) or None,
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
    _compare_with_plain(rows, groups)
    rows.sort(key=lambda r: r.pop("_order"))
    return rows


def _compare_with_plain(rows: list[dict[str, Any]], groups: dict[str, list[dict[str, Any]]]) -> None:
    """Adds to each SR row its paired difference to the plain configuration that matches it in every
    key but the SR block's, on the first metric both have (test_acc, or test_miou)."""
    twins: dict[tuple, list[list[dict[str, Any]]]] = {}
    for runs in groups.values():  # (scores of another split or checkpoint rule are no twin's)
        if runs[0].get("config", {}).get("sr_stage") is None:
            twins.setdefault((_without_sr(runs[0].get("config", {})), tested_on(runs[0])), []).append(runs)
    # a configuration with two plain twins (the same plain runs in two folders) has no single answer
    plain = {key: found[0] for key, found in twins.items() if len(found) == 1}
    for row in rows:
        runs = groups[row["folder"]]
        config = runs[0].get("config", {})
        twin = (
            plain.get((_without_sr(config), tested_on(runs[0])))
            if config.get("sr_stage") is not None
            else None
        )
        if twin is None:
            continue
        metric = next((m for m in METRICS if runs[0].get(m) is not None and twin[0].get(m) is not None), None)
        if metric is None:
            continue
        diff = paired_difference(
            {r["seed"]: r[metric] for r in runs if _number(r.get(metric)) and "seed" in r},
            {r["seed"]: r[metric] for r in twin if _number(r.get(metric)) and "seed" in r},
        )
        if diff is not None:
            row["vs_plain"] = _verdict(diff)
            row.update({f"vs_plain_{k}": v for k, v in diff.items()})
