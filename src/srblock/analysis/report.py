"""One self-contained HTML page a researcher sends as it is: who made it from what (date, command,
versions, commit, machine), a summary of the configurations with a glossary, their learning curves
on shared axes, what differs between them, then each run: its result, its memory, its analyses."""

from __future__ import annotations

import html
import json
from pathlib import Path

import yaml

from ..atomic_files import refuse_foreign, starts_with, write_text_atomic
from ..busy import working
from ..results import finished_results, summarize
from ..run_folder import CLASS_IOU_FILE, CONFIG_FILE, METRICS_FILE, RunFolder
from . import run_analysis
from .analyze import NotAnalysable
from .html_page import GLOSSARY, PAGE_START, RESULT_COLUMNS, STYLE, figure_tag, glossary_tag, table_tag
from .plots import comparison_curves_figure, memory_curves_figure
from .seg_examples import segmentation_examples

CAPTIONS = {  # the analyses' figures (analyze.py), by the start of their file names
    "ablation": "Test accuracy with the SR blocks, and with each bypassed: what the memory adds.",
    "weights": "The memory weights each class's images choose, per memory block.",
    "features": "How much the SR block changes the feature map, per class.",
    "memory": "The learned memory blocks, each as a map of its channels' means.",
    "separation": "How well the classes are told apart by their memory weights alone.",
}


def _run_section(folder: Path, classes, per_class: int, split: str, data_root, device=None) -> str:
    run = RunFolder(folder)
    parts = [
        f"<h3>{html.escape(folder.parent.name)} · {html.escape(folder.name)} "
        f"<small>{html.escape(str(folder))}</small></h3>"
    ]
    if not run.has_result():
        parts.append(
            "<p><b>Not finished</b> (no result.json): what follows is its best checkpoint so far, "
            "not a tested model.</p>"
        )
    else:
        result = run.result()
        keys = [k for k in RESULT_COLUMNS if result.get(k) is not None]
        headings = {k: heading for k, (heading, _) in RESULT_COLUMNS.items()}
        parts.append(table_tag([result], keys, headings))
    if (folder / METRICS_FILE).is_file():
        memory = memory_curves_figure(run.metrics(), folder / "memory_curves.png")
        if memory is not None:
            caption = (
                "The memory over training: its RMS against its input's, how evenly its weights "
                "spread, how well they tell classes apart, and the validation score with the "
                "blocks bypassed."
            )
            parts.append(figure_tag(memory, "SR memory statistics per epoch", caption))
    if (folder / CLASS_IOU_FILE).is_file():  # a segmentation run: what it predicts
        figure = segmentation_examples(folder, data_root, device=device)
        parts.append(
            figure_tag(
                figure,
                "test images, labels, predictions",
                "Test images, their labels and the run's predictions.",
            )
        )
    if run.config().sr_stage is None:
        return "\n".join(parts)  # (the summary says once what a plain run lacks)
    try:
        paths = run_analysis(folder, classes, per_class, split, data_root, device=device)
    except NotAnalysable as err:  # a data set the analyses do not read: say so
        parts.append(f"<p>{html.escape(str(err))}</p>")
        return "\n".join(parts)
    ablation = json.loads(paths["ablation.json"].read_text())
    weights = json.loads(paths["weights.json"].read_text())
    said = ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in ablation.items())
    parts.append(f"<p>Ablation (test accuracy, %): {said}.</p>")
    for block, data in weights["blocks"].items():
        unused = ", ".join(map(str, data["unused_blocks"])) or "none"
        parts.append(
            f"<p><b>{html.escape(block)}</b>: classes told apart by their weights alone "
            f"{data['nearest_centroid_acc']:.1f}% (chance {data['chance_acc']:.1f}%); "
            f"unused memory blocks: {unused}.</p>"
        )
    for name, path in paths.items():
        if name.endswith(".png"):
            caption = next((c for key, c in CAPTIONS.items() if name.startswith(key)), "")
            parts.append(figure_tag(path, name.removesuffix(".png").replace("_", " "), caption or name))
    return "\n".join(parts)


def _header(command: str | None, results: list[dict]) -> str:
    """Date, command, this code's versions, commit and machine, and those the runs trained with."""
    from datetime import datetime, timezone

    from ..provenance import git_commit, machine, versions

    own, commit = versions(), git_commit()
    said = [
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"by <code>{html.escape(command or 'srblock.analysis.report.write_report(...)')}</code>",
        f"on {html.escape(machine())}",
        "with "
        + ", ".join(f"{k} {html.escape(v)}" for k, v in own.items() if k in ("srblock", "torch", "timm")),
        f"commit {html.escape(commit[:12])}" if commit else "not from a git checkout",
    ]
    trained = sorted(
        {
            ", ".join(f"{k} {r.get('versions', {}).get(k, '?')}" for k in ("srblock", "torch", "timm"))
            + f" on {r.get('device', '?')}"
            + (f", commit {r['git_commit'][:12]}" if r.get("git_commit") else "")
            for r in results
        }
    )
    runs = f"<br>The runs trained with {html.escape('; '.join(trained))}." if trained else ""
    return f'<p class="meta">{"; ".join(said)}.{runs}</p>'


def _summary(rows: list[dict], results: list[dict]) -> str:
    """The configurations side by side, with a glossary of the columns."""
    one_seed = {str(Path(r["folder"]).parent): r for r in results}  # (each configuration's parameters)
    score = "test_miou" if any(r.get("test_miou") for r in rows) else "test_acc"
    heading = RESULT_COLUMNS[score][0]  # (as the runs' tables head it)
    table = [
        {
            "configuration": r["name"],
            "seeds": r["seeds"],
            heading: r.get(score),
            "vs plain": r.get("vs_plain") or ("" if r.get("M") is None else "no plain twin given"),
            "parameters": one_seed[r["folder"]].get("params"),
            "SR overhead (%)": r.get("oh_pct"),
        }
        for r in rows
    ]
    glossary = {heading if k == "score" else k: v for k, v in GLOSSARY.items()}
    return "<h2>Summary</h2>" + table_tag(table, list(table[0])) + glossary_tag(glossary)


def _label(folder: Path, runs: list[Path]) -> str:
    """A configuration's name, with its recipe's where two recipes hold one of that name."""
    named = {r.parent for r in runs if r.parent.name == folder.parent.name}
    return folder.parent.name if len(named) == 1 else f"{folder.parents[1].name}/{folder.parent.name}"


def _curves(runs: list[Path]) -> list[str]:
    """The configurations' learning curves on shared axes: one figure per unit (classification's
    epochs, segmentation's iterations), drawn in a temporary folder and embedded."""
    import tempfile

    by_unit: dict[str, dict[str, list[list[dict]]]] = {}
    for folder in runs:
        rows = RunFolder(folder).metrics() if (folder / METRICS_FILE).is_file() else []
        if rows:
            unit = "iteration" if "iteration" in rows[0] else "epoch"
            by_unit.setdefault(unit, {}).setdefault(_label(folder, runs), []).append(rows)
    parts = ["<h2>Learning curves</h2>"] if by_unit else []
    caption = "each configuration's mean over its seeds, in a band from its lowest seed to its highest."
    with tempfile.TemporaryDirectory() as scratch:
        for unit, groups in by_unit.items():
            curves = comparison_curves_figure(groups, Path(scratch) / f"{unit}.png")
            parts.append(figure_tag(curves, f"learning curves per {unit}", f"Per {unit}: {caption}"))
    return parts


def _configurations(runs: list[Path]) -> str:
    """What differs between the configurations (a table), each whole config.yaml behind a fold."""
    configs: dict[str, dict] = {}
    for folder in runs:
        label = _label(folder, runs)
        if label not in configs:  # (a configuration's seeds share it: read once)
            configs[label] = {k: v for k, v in RunFolder(folder).config().keys().items() if k != "seed"}
    keys = list(dict.fromkeys(k for c in configs.values() for k in c))
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1]
    parts = ["<h2>Configurations</h2>"]
    if differ:
        rows = [
            {
                "configuration": name,
                **{k: repr(c.get(k)) if not isinstance(c.get(k), str) else c.get(k) for k in differ},
            }
            for name, c in configs.items()
        ]
        parts.append("<p>What differs between them:</p>" + table_tag(rows, ["configuration", *differ]))
    else:
        parts.append("<p>One configuration.</p>")
    for name, config in configs.items():
        text = html.escape(yaml.safe_dump(config, sort_keys=False))
        parts.append(
            f"<details><summary>config.yaml of {html.escape(name)}</summary><pre>{text}</pre></details>"
        )
    plain = [name for name, c in configs.items() if c.get("sr_stage") is None]
    if plain:
        lacks = "weights per class, feature-map deltas, memory maps, the ablation"
        parts.append(
            f"<p>{html.escape(', '.join(plain))}: plain (no SR block), so no memory analyses ({lacks}).</p>"
        )
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
    command: str | None = None,
) -> Path:
    """report.html for `folders` (run folders, or folders of runs), every figure embedded; the
    analyses run their models on `device` (None: the CPU); `command` is what the header says made it."""
    runs, stopped = report_runs(folders)
    out = Path(out) if out else runs[0] / "report.html"
    refuse_foreign(out, starts_with(PAGE_START), "srblock report")  # (its own page is written anew)
    # every seed of each configuration given (a run folder stands for its configuration's seeds),
    # each once, summarised together so that an SR row finds its plain twin
    found: dict[str, dict] = {}
    for folder in map(Path, folders):
        for result in finished_results(folder.parent if (folder / CONFIG_FILE).exists() else folder):
            found[result["folder"]] = result
    results = list(found.values())
    body = ["<h1>srblock report</h1>", _header(command, results)]
    if results:
        body.append(_summary(summarize(results), results))
    body += _curves(runs)
    body.append(_configurations(runs))
    if stopped:
        items = "".join(f"<li>{html.escape(f'{r}: {why}')}</li>" for r, why in stopped.items())
        body.append(f"<h2>Left out: stopped as diverged</h2><ul>{items}</ul>")
    said = glossary_tag({f"{heading} ({key})": what for key, (heading, what) in RESULT_COLUMNS.items()})
    body.append(f"<h2>Runs</h2><details><summary>what a run's columns say</summary>{said}</details>")
    for run in working(runs, "analysing (runs)"):
        body.append(_run_section(run, classes, per_class, split, data_root, device))
    page = (
        PAGE_START
        + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + f"<style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    write_text_atomic(out, page)
    return out
