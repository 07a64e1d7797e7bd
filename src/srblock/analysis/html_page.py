"""The HTML a report is made of: its style (tables that scroll inside their box, so a page fits a
1280- or an 800-pixel window), tables (numbers written as `srblock table` writes them: render.py),
glossaries, embedded figures with captions."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ..render import cell_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; overflow-wrap: anywhere; } h3 small { font-weight: 400; color: #666; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
figure { margin: 1em 0; } figcaption { font-size: 13px; color: #444; }
.scroll { max-width: 100%; overflow-x: auto; } .meta { font-size: 13px; color: #444; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
dl { font-size: 13px; } dt { font-weight: 600; } dd { margin: 0 0 .4em 1.5em; }
pre { background: #f7f7f7; padding: .6em; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
"""

# the summary's columns: (heading, what the column says), for the glossary under it
GLOSSARY = {
    "configuration": "the runs' configuration: model, SR block (sr3p4h8: after stage 3, P = 4 memory "
    "blocks, an FC net of 8 hidden units) and the keys changed from the recipe",
    "seeds": "the seeds the mean is over (a seed whose score is not a number is left out, and said)",
    "score": "the test score, mean ± sample standard deviation over the seeds (the split tested "
    "and the checkpoint are in each run's result)",
    "vs plain": "SR minus the plain configuration of the same keys, paired by seed: the mean "
    "difference, its 95% interval and the paired t-test's p",
    "parameters": "the network's parameters, SR blocks included",
    "SR overhead (%)": "the parameters the SR blocks add, as a share of the plain network's",
}

# a run's result.json keys in the order its table shows them: (its heading there, what it says)
RESULT_COLUMNS = {
    "test_acc": ("test top-1 (%)", "top-1 accuracy of the tested checkpoint on the tested split"),
    "test_top5": ("test top-5 (%)", "top-5 accuracy, likewise"),
    "test_acc_bypassed": (
        "top-1, SR bypassed (%)",
        "the top-1 accuracy with every SR block bypassed (the identity): what the memory adds",
    ),
    "best_val_acc": ("best val top-1 (%)", "the validation accuracy that chose the checkpoint"),
    "best_epoch": ("best epoch", "the epoch of that checkpoint (from 1)"),
    "test_miou": ("test mIoU (%)", "mean IoU over the classes, on the tested split"),
    "test_macc": ("test mAcc (%)", "mean accuracy over the classes"),
    "test_miou_ms": ("mIoU, multi-scale (%)", "mean IoU, multi-scale + flip inference"),
    "test_macc_ms": ("mAcc, multi-scale (%)", "mean accuracy, multi-scale + flip inference"),
    "test_pixel_acc": ("test pixel acc. (%)", "the share of pixels labelled right"),
    "test_miou_bypassed": (
        "mIoU, SR bypassed (%)",
        "the mean IoU with every SR block bypassed (the identity): what the memory adds",
    ),
    "best_val_miou": ("best val mIoU (%)", "the validation mean IoU that chose the checkpoint"),
    "best_iteration": ("best iteration", "the iteration of the checkpoint tested"),
    "sr_mem_ratio": (
        "memory / input (RMS)",
        "the recalled memory's RMS over its input's: how much the block changes the map",
    ),
    "sr_weight_entropy": (
        "weight entropy",
        "the entropy of the memory weights over log P: 1 is a uniform choice",
    ),
    "sr_weight_class_sep": (
        "class separation (%)",
        "how well the classes are told apart by their memory weights alone (nearest class mean)",
    ),
    "params": ("parameters", "the network's parameters, SR blocks included"),
    "sr_params": ("SR parameters", "the SR blocks' own parameters"),
    "oh_pct": ("SR overhead (%)", "the SR blocks' parameters as a share of the plain network's"),
    "wall_time_s": ("seconds", "the run's wall time from start to result"),
    "device": ("device", "where it trained"),
}

PAGE_START = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>srblock report</title>'


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_tag(rows: list[dict], columns: list[str], headings: dict[str, str] | None = None) -> str:
    """A table of `rows`' `columns`, headed by `headings` where given (the column's key then its
    tooltip, as result.json names it)."""
    headings = headings or {}
    head = "".join(
        f'<th title="{html.escape(c)}">{html.escape(headings[c])}</th>'
        if c in headings
        else f"<th>{html.escape(c)}</th>"
        for c in columns
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def glossary_tag(glossary: dict[str, str]) -> str:
    """What each column of a table says, as a definition list."""
    said = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in glossary.items())
    return f"<dl>{said}</dl>"


def figure_tag(path: Path, alt: str, caption: str) -> str:
    return f"<figure>{image_tag(path, alt)}<figcaption>{html.escape(caption)}</figcaption></figure>"
