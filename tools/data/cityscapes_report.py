"""The Cityscapes evaluation report in the official script's layout (as the authors'
release log shows it), and the parser of such a report (official or ours)."""
from __future__ import annotations

import re

import numpy as np

from tools.report.log_parsers import LogParseError

from .cityscapes_labels import CATEGORIES, LABELS, NUM_LABEL_IDS, TRAIN_CLASSES
from .cityscapes_scores import EvalResult

# ------------------------------------------------------------------------ the report

_RULE = "-" * 32


def _matrix_rule() -> str:
    return "\b" + "-" * 14 + "  " + ("\b" + "-" * 6 + "  ") * NUM_LABEL_IDS + "\b" + "-" * 7 + " "


def format_confusion(confusion: np.ndarray) -> list[str]:
    """The row-normalised confusion matrix block (with the backspaces the official script
    prints to eat print()'s separators; rows without ground truth are left out)."""
    lines = [_matrix_rule()]
    header = "\b" + " " * 13 + " | " + "".join(f"\b{l.name[0]:^5} | " for l in LABELS) + f"\b{'Prior':>6} |"
    lines += [header, _matrix_rule()]
    total = confusion.sum()
    for label in LABELS:
        row = confusion[label.id]
        prior = row.sum() / total if total else 0.0
        if prior < 1e-9:
            continue
        lines.append(format_confusion_row(label.name, row / row.sum(), prior))
    lines.append(_matrix_rule())
    return lines


def format_confusion_row(name: str, fractions, prior: float) -> str:
    return (f"\b{name[:13]:>13} | " + "".join(f"\b{v:>5.2f}   " for v in fractions)
            + f"\b{prior:>6.4f} ")


def _score_line(name: str, iou: float, niou: float) -> str:
    return f"{name:<14}: {iou:>5.3f}    {niou:>5.3f}"


def format_report(result: EvalResult, search: str = "") -> str:
    """The whole report, in the release file's layout."""
    lines = [search, f"Evaluating {result.images} pairs of images...",
             "".join(f"\rImages Processed: {i + 1} " for i in range(result.images)), ""]
    lines += format_confusion(result.confusion)
    lines += ["", "classes          IoU      nIoU", _RULE]
    lines += [_score_line(n, result.class_iou[n], result.class_niou[n]) for n in TRAIN_CLASSES]
    lines += [_RULE, _score_line("Score Average", result.miou, result.niou), _RULE, "", ""]
    lines += ["categories       IoU      nIoU", _RULE]
    lines += [_score_line(c, result.category_iou[c], result.category_niou[c]) for c in CATEGORIES]
    lines += [_RULE, _score_line("Score Average", result.miou_category, result.niou_category), _RULE, ""]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ the parser

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SCORE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]*?)\s*:\s*(?P<iou>nan|[-+]?\d*\.?\d+)"
                    r"(?:\s+(?P<niou>nan|[-+]?\d*\.?\d+))?\s*$")


_CONFUSION_ROW = re.compile(r"^\s*(?P<name>[^|\s][^|]*?)\s*\|\s*(?P<values>(?:(?:nan|\d+\.\d+)\s+)+(?:nan|\d+\.\d+))\s*$")


def _score_block(lines: list[str], heading: str) -> tuple[dict, dict, tuple | None]:
    """Scores listed under `heading` up to the block's "Score Average" line."""
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(heading)]
    if not starts:
        return {}, {}, None
    iou, niou, average = {}, {}, None
    for line in lines[starts[-1] + 1:]:
        m = _SCORE.match(line.strip())
        if not m:
            if line.strip() and not set(line.strip()) <= {"-"}:
                break
            continue
        niou_value = float(m["niou"]) if m["niou"] else float("nan")
        if m["name"] == "Score Average":
            average = (float(m["iou"]), niou_value)
            break
        iou[m["name"]] = float(m["iou"])
        niou[m["name"]] = niou_value
    return iou, niou, average


def parse_cityscapes_eval(text: str, source: str = "<cityscapes eval output>") -> dict:
    """Read a Cityscapes evaluation report (official script or ours; colours and backspaces
    tolerated).  Returns ``{"miou", "miou_category", "classes": {name: iou},
    "classes_niou", "categories", "categories_niou", "niou", "niou_category", "images",
    "confusion_rows"}``
    with fractions as printed.  The class "Score Average" (mIoU) is required; a report cut
    before its category block gives None for the category figures.
    """
    lines = [_ANSI.sub("", line).replace("\b", "") for line in re.split(r"\r\n|\n", text)]
    classes, classes_niou, average = _score_block(lines, "classes")
    if average is None:
        hint = (f"{len(classes)} class score(s) but no 'Score Average' (truncated report?)" if classes
                else "no 'classes  IoU  nIoU' block: not a Cityscapes evaluation report")
        raise LogParseError(source, f"no class mean IoU: {hint}")
    categories, categories_niou, cat_average = _score_block(lines, "categories")
    confusion_rows = {}
    for line in lines:
        m = _CONFUSION_ROW.match(line)
        if m:
            values = [float(v) for v in m["values"].split()]
            confusion_rows[m["name"]] = {"fractions": values[:-1], "prior": values[-1]}
    images = re.search(r"Evaluating (\d+) pairs of images", text)
    return {
        "miou": average[0],
        "miou_category": cat_average[0] if cat_average else None,
        "classes": classes,
        "classes_niou": classes_niou,
        "categories": categories,
        "categories_niou": categories_niou,
        "niou": average[1],
        "niou_category": cat_average[1] if cat_average else None,
        "images": int(images.group(1)) if images else None,
        "confusion_rows": confusion_rows,   # row name (cut to 13 characters) -> fractions, prior
    }
