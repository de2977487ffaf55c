"""Cityscapes pixel-level evaluation (IoU / nIoU per class and per category) and a parser for
its printed report.

The report is written in the layout of the official cityscapesScripts evaluation as the
authors' release shows it (``release/log/pred_df1seg_mergebn_val.txt``): the ground-truth
search pattern, the progress line, the row-normalised confusion matrix over all 34 label
ids with each row's prior, then class IoU / nIoU and category IoU / nIoU with their
averages.  The definitions follow the official ones:

* the confusion matrix is counted over label ids (ground truth row, prediction column);
* class IoU = TP / (TP + FP + FN) where FN is every other prediction on a ground-truth pixel
  of the class and FP only counts pixels whose ground truth is a label kept in the
  evaluation (pixels of "ignored" labels, trainId 255, never count as false positives);
* category IoU is the same over the union of a category's evaluated labels;
* nIoU (classes with instances) weights each instance's TP/FN by the average instance size
  of its class over its own size, when instance-id maps are available; ``nan`` otherwise.

Usage::

    python -m tools.cityscapes_eval eval PRED_DIR LABEL_DIR [--out FILE] [--json]
    python -m tools.cityscapes_eval parse FILE --json
"""
from __future__ import annotations
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from tools.data.cityscapes_files import evaluate_dirs, pair_files
from tools.data.cityscapes_labels import (AVG_INSTANCE_SIZE, CATEGORIES, IGNORE_TRAIN_ID, LABELS,
                                          NUM_LABEL_IDS, NUM_TRAIN_CLASSES, TRAIN_CLASSES, Label,
                                          labelid_to_trainid_lut, trainid_to_labelid_lut)
from tools.data.cityscapes_report import (format_confusion, format_confusion_row, format_report,
                                          parse_cityscapes_eval)
from tools.data.cityscapes_scores import (CityscapesEvaluator, EvalInputError, EvalResult,
                                          scores_from_confusion)
from tools.report.log_parsers import LogParseError, read_log

# The evaluation lives in tools.data; this module is its command line and keeps the names
# callers import from here.
__all__ = [
    "AVG_INSTANCE_SIZE", "CATEGORIES", "IGNORE_TRAIN_ID", "LABELS", "NUM_LABEL_IDS",
    "NUM_TRAIN_CLASSES", "TRAIN_CLASSES", "CityscapesEvaluator", "EvalInputError", "EvalResult",
    "Label", "evaluate_dirs", "format_confusion", "format_confusion_row", "format_report",
    "labelid_to_trainid_lut", "main", "pair_files", "parse_cityscapes_eval",
    "scores_from_confusion", "trainid_to_labelid_lut",
]


# ---------------------------------------------------------------------------- the CLI

def _json_number(value):
    return None if value is None or math.isnan(value) else value  # JSON has no NaN


def _summary(parsed: dict) -> dict:
    return {"miou": _json_number(parsed["miou"]), "miou_category": _json_number(parsed["miou_category"]),
            "classes": {name: _json_number(v) for name, v in parsed["classes"].items()}}


def _fail(message: str) -> int:
    print(f"cityscapes_eval: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.cityscapes_eval", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="read a Cityscapes evaluation report")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help='print {"miou", "miou_category", "classes"} as JSON')
    e = sub.add_parser("eval", help="evaluate prediction PNGs against ground-truth PNGs")
    e.add_argument("pred_dir", type=Path, help="prediction PNGs (train ids unless --pred-format labelid)")
    e.add_argument("label_dir", type=Path, help="ground truth, e.g. gtFine/val (searched recursively)")
    e.add_argument("--label-format", choices=("auto", "labelid", "trainid"), default="auto",
                   help="ground-truth encoding; auto: *labelIds* -> labelid, *trainIds* -> trainid")
    e.add_argument("--pred-format", choices=("trainid", "labelid"), default="trainid")
    e.add_argument("--pattern", help="ground-truth file glob (default *_gtFine_labelIds.png if any, else *.png)")
    e.add_argument("--out", type=Path, help="write the report here (default: stdout)")
    e.add_argument("--json", action="store_true", help="print the JSON summary (as `parse --json`) to stdout")
    args = ap.parse_args(argv)

    if args.command == "parse":
        try:
            parsed = parse_cityscapes_eval(read_log(args.file), str(args.file))
        except LogParseError as exc:
            return _fail(str(exc))
        if args.json:
            print(json.dumps(_summary(parsed), indent=2))
        else:
            print(f"mIoU {parsed['miou'] * 100:.1f}  category mIoU "
                  + (f"{parsed['miou_category'] * 100:.1f}" if parsed["miou_category"] is not None else "—"))
        return 0

    try:
        result, search = evaluate_dirs(args.pred_dir, args.label_dir, args.label_format,
                                       args.pred_format, args.pattern)
    except EvalInputError as exc:
        return _fail(str(exc))
    report = format_report(result, search)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report)
    if args.json:
        print(json.dumps(_summary(parse_cityscapes_eval(report)), indent=2))
    elif not args.out:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
