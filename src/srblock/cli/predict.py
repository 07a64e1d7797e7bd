"""`srblock predict`: a trained run on new images (classes, or masks for a segmentation run)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from ..atomic_files import refuse_foreign, starts_with, write_atomic
from ..render import render
from .common import at_least, note_if_unfinished, refuse_flags
from .model_flags import Renamed, add_run_args, device

EPILOG = """\
Reads only the run folder (config.yaml, best.ckpt, result.json): no training data is needed.
Each image is read with the run's channels and prepared as its evaluation prepared images.

examples:
  srblock predict runs/folder/timm_resnet18-sr3p4h8/seed0 photo.jpg more_photos/ --topk 3
  srblock predict runs/demo/resnet10s_cifar-sr3p4h8/seed0 shirts/ --csv predictions.csv
  srblock predict runs/cityscapes/deeplabv3_r50_d8-sr2p2h8/seed0 street.png --masks masks/
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="a trained run's predictions on image files or folders",
        epilog=EPILOG,
        description="Predict classes (or masks, for a segmentation run) of images with a run's best.ckpt.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", help="a run folder: OUT/<recipe>/<configuration>/seed<k>")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders of them")
    p.add_argument("--topk", type=at_least(1), default=1, metavar="K", help="classes per image (default: 1)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows to FILE (CSV)")
    p.add_argument(
        "--masks", metavar="DIR", help="segmentation: where the masks go (default: RUN_DIR/predictions)"
    )
    p.add_argument(  # (--out names a folder of runs everywhere else)
        "--out", dest="masks", action=Renamed, new="--masks DIR", help=argparse.SUPPRESS
    )
    add_run_args(p, batch=32, precision=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..predict import CSV_COLUMNS, Predictor, image_files  # (torch: only once it runs)

    if args.csv and Path(args.csv).suffix.lower() != ".csv":  # `--csv *.png` would overwrite an image
        raise ValueError(f"--csv takes a .csv file to write, got {args.csv}: e.g. --csv predictions.csv")
    if args.csv:  # a table predict wrote before is written anew; any other file is the user's
        ours = [starts_with(",".join(columns) + "\n") for columns in CSV_COLUMNS]
        refuse_foreign(Path(args.csv), lambda path: any(check(path) for check in ours), "srblock predict")
    predictor = Predictor.load(args.run_dir, device(args))
    if predictor.is_segmentation:
        refuse_flags(args, ["topk", "batch_size"], "for a segmentation run: it predicts one mask per image")
    else:
        refuse_flags(args, ["masks"], "for a classification run (it is where masks go): use --csv FILE")
        if args.topk > len(predictor.classes):
            raise ValueError(
                f"--topk {args.topk}: the run has {len(predictor.classes)} classes; give at most that"
            )
    note_if_unfinished(args.run_dir, "predicts")
    paths = image_files(args.inputs)
    if predictor.is_segmentation:
        rows = predictor.segment(
            paths, Path(args.masks) if args.masks else Path(args.run_dir) / "predictions"
        )
    else:
        rows = predictor.classify(paths, topk=args.topk, batch=args.batch_size)
    columns = list(rows[0])
    if args.csv:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(Path(args.csv), lambda f: f.write(text.getvalue().encode()))
    # probabilities to two decimals on screen (the CSV keeps every digit)
    shown = [{k: f"{v:.2f}" if k == "probability" else v for k, v in row.items()} for row in rows]
    print(render(shown, columns))
    return 0
