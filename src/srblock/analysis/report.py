"""One self-contained HTML page per set of runs: config, learning curves, results, analyses."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import yaml

from ..atomic_files import refuse_foreign, starts_with, write_text_atomic
from ..busy import working
from ..results import finished_results, md_columns, summarize
from ..run_folder import CLASS_IOU_FILE, CONFIG_FILE, METRICS_FILE, RunFolder
from . import run_analysis
from .analyze import NotAnalysable
from .plots import learning_curves_figure, memory_curves_figure
from .seg_examples import segmentation_examples

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; } img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
table { border-collapse: collapse; font-size: 14px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f4f4f4; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 13px; }
"""


PAGE_START = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>srblock report</title>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _run_section(folder: Path, classes, per_class: int, split: str, data_root, device=None) -> str:
    parts = [f"<h2>{html.escape(str(folder))}</h2>"]
    run = RunFolder(folder)
    config = run.config().keys()
    parts.append(f"<h3>Configuration</h3><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>")
    if (folder / METRICS_FILE).is_file():
        rows = run.metrics()
        curves = learning_curves_figure(rows, folder / "learning_curves.png")
        parts.append("<h3>Learning curves</h3>" + _img(curves, "loss and scores per epoch or evaluation"))
        memory = memory_curves_figure(rows, folder / "memory_curves.png")
        if memory is not None:
            parts.append("<h3>The memory over training</h3>" + _img(memory, "SR memory statistics per epoch"))
    if not run.has_result():
        parts.append(
            "<p><b>Not finished</b> (no result.json): what follows is its best checkpoint so far, "
            "not a tested model.</p>"
        )
    if run.has_result():
        result = run.result()
        scores = (
            ["test_miou", "test_macc", "test_miou_ms", "test_macc_ms", "best_iteration"]
            if "test_miou" in result
            else ["test_acc", "test_top5", "test_acc_bypassed", "best_val_acc", "best_epoch"]
        )
        keys = [
            *scores,
            "sr_mem_ratio",
            "sr_weight_entropy",
            "params",
            "sr_params",
            "oh_pct",
            "wall_time_s",
            "device",
        ]
        parts.append("<h3>Result</h3>" + _table([{k: result.get(k) for k in keys}], keys))
    if (folder / CLASS_IOU_FILE).is_file():  # a segmentation run: what it predicts
        figure = segmentation_examples(folder, data_root, device=device)
        parts.append("<h3>Predictions</h3>" + _img(figure, "test images, labels, predictions"))
    try:
        paths = run_analysis(folder, classes, per_class, split, data_root, device=device)
    except NotAnalysable as err:  # no SR blocks, or a data set the analyses do not read: say so
        parts.append(f"<h3>Analyses</h3><p>{html.escape(str(err))}</p>")
        return "\n".join(parts)
    ablation = json.loads(paths["ablation.json"].read_text())
    weights = json.loads(paths["weights.json"].read_text())
    parts.append("<h3>Analyses</h3>")
    parts.append(
        "<p>Ablation (test accuracy, %): "
        + ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in ablation.items())
        + "</p>"
    )
    for block, data in weights["blocks"].items():
        unused = ", ".join(map(str, data["unused_blocks"])) or "none"
        parts.append(
            f"<p><b>{html.escape(block)}</b>: classes told apart by their weights alone "
            f"{data['nearest_centroid_acc']:.1f}% (chance {data['chance_acc']:.1f}%); "
            f"unused memory blocks: {unused}.</p>"
        )
    for name, path in paths.items():
        if name.endswith(".png"):
            parts.append(_img(path, name.removesuffix(".png").replace("_", " ")))
    return "\n".join(parts)


def report_runs(folders: list[str | Path]) -> tuple[list[Path], dict[Path, str]]:
    """The run folders a report of `folders` (run folders, or folders of runs) shows, and those it
    leaves out because they stopped as diverged (with why): one such run does not stop the report."""
    runs: list[Path] = []
    for folder in map(Path, folders):
        found = (
            [folder]
            if (folder / CONFIG_FILE).exists()
            else sorted(p.parent for p in folder.rglob(CONFIG_FILE))
        )
        if not found:
            raise FileNotFoundError(
                f"no run under {folder}: give run folders "
                "(OUT/<recipe>/<configuration>/seed<k>) or their parents"
            )
        runs += found
    stopped = {r: why for r in runs if not RunFolder(r).has_result() and (why := RunFolder(r).diverged())}
    if stopped and len(stopped) == len(runs):
        raise ValueError(
            f"every run given stopped as diverged (e.g. {next(iter(stopped.values()))}): nothing to report"
        )
    return [r for r in runs if r not in stopped], stopped


def write_report(
    folders: list[str | Path],
    out: str | Path | None = None,
    classes=None,
    per_class: int = 50,
    split: str = "val",
    data_root=None,
    device: str | None = None,
) -> Path:
    """report.html for `folders` (run folders, or folders of runs), every figure embedded; the
    analyses run their models on `device` (None: the CPU)."""
    runs, stopped = report_runs(folders)
    out = Path(out) if out else runs[0] / "report.html"
    refuse_foreign(out, starts_with(PAGE_START), "srblock report")  # (its own page is written anew)
    # every seed of each configuration given (a run folder stands for its configuration's seeds),
    # each once, summarised together so that an SR row finds its plain twin
    results: dict[str, dict] = {}
    for folder in map(Path, folders):
        for result in finished_results(folder.parent if (folder / CONFIG_FILE).exists() else folder):
            results[result["folder"]] = result
    summary = summarize(list(results.values()))
    body = ["<h1>srblock report</h1>"]
    if summary:
        body.append(
            "<h2>Results across seeds</h2>"
            + _table(summary, [c for c in md_columns(summary) if c != "folder"])
        )
    if stopped:
        items = "".join(f"<li>{html.escape(f'{r}: {why}')}</li>" for r, why in stopped.items())
        body.append(f"<h2>Left out: stopped as diverged</h2><ul>{items}</ul>")
    body += [
        _run_section(r, classes, per_class, split, data_root, device)
        for r in working(runs, "analysing (runs)")
    ]
    page = PAGE_START + f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    write_text_atomic(out, page)
    return out
