"""`srblock table`: mean ± std over seeds of every configuration under a folder, and SR against plain."""

from __future__ import annotations

import argparse
import sys

from ..render import FORMATS, render
from ..results import (
    collect_results,
    finished_results,
    left_out,
    md_columns,
    raw_columns,
    summarize,
    uncounted,
)

EPILOG = """\
test_acc is the mean ± sample standard deviation over seeds of the test accuracy (%) of each
run's tested checkpoint (best on validation, or the last where the data have no test split:
the "tested" column) (test_top5 likewise); segmentation runs show test_miou and
test_macc (whole image) and test_miou_ms, test_macc_ms (multi-scale + flip) instead; OH is the
parameter overhead over the plain model (%); the
paper's values stand beside ours where the sweep knows them (Table II). tested (shown only where
a row's scores are not a test split's): "val, last epoch" for a folder without test/, whose
validation images are scored with the last epoch's checkpoint, not one chosen on them.

vs_plain (rows with SR): SR minus the plain configuration that matches the row in every key but
the SR block's, over the seeds both have (a seed fixes the split, order and augmentation of both
runs, so they pair): mean difference, 95% confidence interval and p-value of a paired t-test,
the number of seeds, and how to read it: "within noise" where the interval holds 0.

examples:
  srblock table runs/
  srblock table runs/cifar100-table2 --format csv
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table",
        help="mean ± std over seeds of finished runs",
        epilog=EPILOG,
        description="Mean ± std over seeds of every configuration's runs under a folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="a folder of runs (the --out of train or sweep, or below it)")
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default: md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    notes = left_out(args.folder)
    if not finished_results(args.folder) and notes:  # none finished: say why rather than "not yet"
        raise ValueError(f"no run under {args.folder} finished: {'; '.join(notes)}")
    results = collect_results(args.folder)
    rows = summarize(results)
    print(render(rows, md_columns(rows) if args.format == "md" else raw_columns(rows), args.format))
    for line in [*uncounted(results), *notes]:  # beside the table: csv, json stay parseable
        print(f"srblock table: {line}", file=sys.stderr)
    return 0
