"""The Cityscapes evaluation report in the official script's layout (as the authors'
release log shows it); its parser, like every log parser, is in tools.report
(tools.report.cityscapes_log)."""
from __future__ import annotations

import numpy as np

from .cityscapes_labels import CATEGORIES, LABELS, NUM_LABEL_IDS, TRAIN_CLASSES
from .cityscapes_scores import EvalResult

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
