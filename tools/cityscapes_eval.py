"""Cityscapes pixel-level evaluation (IoU / nIoU per class and per category) and a reader of
its printed report.

The report is written in the layout of the official cityscapesScripts evaluation as the
authors' release shows it (``release/log/pred_df1seg_mergebn_val.txt``): the ground-truth
search pattern, the progress line, the row-normalised confusion matrix over all 34 label
ids with each row's prior, then class IoU / nIoU and category IoU / nIoU with their
averages.  The definitions (the official ones) and the evaluation: tools.data.cityscapes_scores
and tools.data.cityscapes_files; the report: tools.data.cityscapes_report; its parser:
tools.report.cityscapes_log.

Usage::

    python -m tools.cityscapes_eval eval PRED_DIR LABEL_DIR [--out FILE] [--json]
    python -m tools.cityscapes_eval parse FILE --json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import run_cli
from tools.data.cityscapes_files import evaluate_dirs
from tools.data.cityscapes_report import format_report
from tools.report.cityscapes_log import parse_cityscapes_eval
from tools.report.log_parsers import read_log


def _json_number(value):
    return None if value is None or math.isnan(value) else value  # JSON has no NaN


def _summary(parsed: dict) -> dict:
    return {"miou": _json_number(parsed["miou"]), "miou_category": _json_number(parsed["miou_category"]),
            "classes": {name: _json_number(v) for name, v in parsed["classes"].items()}}


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
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
    return ap


def _parse(args: argparse.Namespace) -> None:
    parsed = parse_cityscapes_eval(read_log(args.file), str(args.file))
    if args.json:
        print(json.dumps(_summary(parsed), indent=2))
    else:
        print(f"mIoU {parsed['miou'] * 100:.1f}  category mIoU "
              + (f"{parsed['miou_category'] * 100:.1f}" if parsed["miou_category"] is not None else "—"))


def _eval(args: argparse.Namespace) -> None:
    result, search = evaluate_dirs(args.pred_dir, args.label_dir, args.label_format, args.pred_format,
                                   args.pattern)
    report = format_report(result, search)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report)
    if args.json:
        print(json.dumps(_summary(parse_cityscapes_eval(report)), indent=2))
    elif not args.out:
        sys.stdout.write(report)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.cityscapes_eval"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _parse(args) if args.command == "parse" else _eval(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
