"""The parser of a Cityscapes evaluation report: the official cityscapesScripts output, as
the authors' release log shows it, or ours (tools.data.cityscapes_report writes the same
layout).  Colours and the official script's backspaces are tolerated."""
from __future__ import annotations

import re

from .log_parsers import LogParseError

__all__ = ["parse_cityscapes_eval"]

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
