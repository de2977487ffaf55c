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

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.log_parsers import LogParseError, read_log
from tools.common.atomic import atomic_write_text


@dataclass(frozen=True)
class Label:
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool


# The Cityscapes label definitions (cityscapesScripts helpers/labels.py): label id as stored
# in *_gtFine_labelIds.png, the 19 training ids, categories, instance flags.
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         False, True),
    Label("ego vehicle",           1, 255, "void",         False, True),
    Label("rectification border",  2, 255, "void",         False, True),
    Label("out of roi",            3, 255, "void",         False, True),
    Label("static",                4, 255, "void",         False, True),
    Label("dynamic",               5, 255, "void",         False, True),
    Label("ground",                6, 255, "void",         False, True),
    Label("road",                  7,   0, "flat",         False, False),
    Label("sidewalk",              8,   1, "flat",         False, False),
    Label("parking",               9, 255, "flat",         False, True),
    Label("rail track",           10, 255, "flat",         False, True),
    Label("building",             11,   2, "construction", False, False),
    Label("wall",                 12,   3, "construction", False, False),
    Label("fence",                13,   4, "construction", False, False),
    Label("guard rail",           14, 255, "construction", False, True),
    Label("bridge",               15, 255, "construction", False, True),
    Label("tunnel",               16, 255, "construction", False, True),
    Label("pole",                 17,   5, "object",       False, False),
    Label("polegroup",            18, 255, "object",       False, True),
    Label("traffic light",        19,   6, "object",       False, False),
    Label("traffic sign",         20,   7, "object",       False, False),
    Label("vegetation",           21,   8, "nature",       False, False),
    Label("terrain",              22,   9, "nature",       False, False),
    Label("sky",                  23,  10, "sky",          False, False),
    Label("person",               24,  11, "human",        True,  False),
    Label("rider",                25,  12, "human",        True,  False),
    Label("car",                  26,  13, "vehicle",      True,  False),
    Label("truck",                27,  14, "vehicle",      True,  False),
    Label("bus",                  28,  15, "vehicle",      True,  False),
    Label("caravan",              29, 255, "vehicle",      True,  True),
    Label("trailer",              30, 255, "vehicle",      True,  True),
    Label("train",                31,  16, "vehicle",      True,  False),
    Label("motorcycle",           32,  17, "vehicle",      True,  False),
    Label("bicycle",              33,  18, "vehicle",      True,  False),
)
NUM_LABEL_IDS = len(LABELS)          # label ids 0..33 (license plate, id -1, never occurs in PNGs)
IGNORE_TRAIN_ID = 255
TRAIN_CLASSES: tuple[str, ...] = tuple(
    label.name for label in sorted((l for l in LABELS if l.train_id != IGNORE_TRAIN_ID), key=lambda l: l.train_id))
NUM_TRAIN_CLASSES = len(TRAIN_CLASSES)  # 19
# Category order of the printed report, as in the authors' release file.
CATEGORIES: tuple[str, ...] = ("flat", "nature", "object", "sky", "construction", "human", "vehicle")
# Average instance size (pixels) per class over the training set, the nIoU weights of the
# official evaluation.
AVG_INSTANCE_SIZE = {
    "bicycle": 4672.3249222261, "caravan": 36771.8241758242, "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518, "bus": 35732.1511111111, "train": 67583.7075812274,
    "car": 12794.0202738185, "person": 3462.4756337644, "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

_EVALUATED = np.array([not l.ignore_in_eval for l in LABELS])


def labelid_to_trainid_lut() -> np.ndarray:
    """256-entry table: label id -> train id (255 for ignored and unknown ids)."""
    lut = np.full(256, IGNORE_TRAIN_ID, dtype=np.uint8)
    for label in LABELS:
        lut[label.id] = label.train_id
    return lut


def trainid_to_labelid_lut() -> np.ndarray:
    """256-entry table: train id -> label id; 255 maps to "unlabeled" (0)."""
    lut = np.zeros(256, dtype=np.uint8)
    for label in LABELS:
        if label.train_id != IGNORE_TRAIN_ID:
            lut[label.train_id] = label.id
    return lut


class EvalInputError(ValueError):
    """Bad evaluation input (unreadable image, size mismatch, label out of range)."""


# --------------------------------------------------------------------------- counting

class CityscapesEvaluator:
    """Accumulates the label-id confusion matrix (and the instance statistics for nIoU)
    over image pairs; `result()` computes the scores."""

    def __init__(self):
        self.confusion = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=np.int64)
        self.images = 0
        self._inst_class = {l.name: [0.0, 0.0] for l in LABELS if l.has_instances and not l.ignore_in_eval}
        self._inst_category = {c: [0.0, 0.0] for c in ("human", "vehicle")}  # categories made only of instance classes
        self.has_instances = False

    def add(self, pred_labelids: np.ndarray, gt_labelids: np.ndarray,
            gt_instanceids: np.ndarray | None = None, where: str = "image") -> None:
        """Add one image: prediction and ground truth as label-id maps of equal shape."""
        if pred_labelids.shape != gt_labelids.shape:
            raise EvalInputError(f"{where}: prediction {pred_labelids.shape} and ground truth "
                                 f"{gt_labelids.shape} differ in size")
        for what, arr in (("ground truth", gt_labelids), ("prediction", pred_labelids)):
            if arr.size and (arr.min() < 0 or arr.max() >= NUM_LABEL_IDS):
                bad = np.unique(arr[(arr < 0) | (arr >= NUM_LABEL_IDS)])[:5].tolist()
                raise EvalInputError(f"{where}: {what} has label ids {bad} outside 0..{NUM_LABEL_IDS - 1}")
        gt = gt_labelids.astype(np.int64).ravel()
        pred = pred_labelids.astype(np.int64).ravel()
        self.confusion += np.bincount(gt * NUM_LABEL_IDS + pred,
                                      minlength=NUM_LABEL_IDS ** 2).reshape(NUM_LABEL_IDS, NUM_LABEL_IDS)
        self.images += 1
        if gt_instanceids is not None:
            if gt_instanceids.shape != gt_labelids.shape:
                raise EvalInputError(f"{where}: instance map {gt_instanceids.shape} and labels "
                                     f"{gt_labelids.shape} differ in size")
            self.has_instances = True
            self._add_instances(pred_labelids, gt_instanceids)

    def _add_instances(self, pred: np.ndarray, instances: np.ndarray) -> None:
        # Instance ids are label_id * 1000 + k; as in the official code only ids > 1000 count.
        category_ids = {c: [l.id for l in LABELS if l.category == c] for c in self._inst_category}
        for inst in np.unique(instances[instances > 1000]):
            label = LABELS[int(inst) // 1000] if int(inst) // 1000 < NUM_LABEL_IDS else None
            if label is None or label.ignore_in_eval or not label.has_instances:
                continue
            mask = instances == inst
            size = int(mask.sum())
            weight = AVG_INSTANCE_SIZE[label.name] / size
            tp = int((pred[mask] == label.id).sum())
            stats = self._inst_class[label.name]
            stats[0] += tp * weight
            stats[1] += (size - tp) * weight
            if label.category in self._inst_category:
                cat_tp = int(np.isin(pred[mask], category_ids[label.category]).sum())
                cat = self._inst_category[label.category]
                cat[0] += cat_tp * weight
                cat[1] += (size - cat_tp) * weight

    def result(self) -> "EvalResult":
        return scores_from_confusion(self.confusion, self._inst_class if self.has_instances else None,
                                     self._inst_category if self.has_instances else None, self.images)


@dataclass
class EvalResult:
    confusion: np.ndarray                 # label-id confusion matrix, rows = ground truth
    class_iou: dict[str, float]           # the 19 evaluated classes, train-id order
    class_niou: dict[str, float]
    category_iou: dict[str, float]        # the 7 categories, report order
    category_niou: dict[str, float]
    images: int = 0

    @property
    def miou(self) -> float:
        return _nanmean(self.class_iou.values())

    @property
    def miou_category(self) -> float:
        return _nanmean(self.category_iou.values())

    @property
    def niou(self) -> float:
        return _nanmean(self.class_niou.values())

    @property
    def niou_category(self) -> float:
        return _nanmean(self.category_niou.values())


def _nanmean(values) -> float:
    valid = [v for v in values if not math.isnan(v)]
    return sum(valid) / len(valid) if valid else float("nan")


def _ratio(tp: float, fp: float, fn: float) -> float:
    denom = tp + fp + fn
    return float(tp) / denom if denom > 0 else float("nan")


def scores_from_confusion(confusion: np.ndarray, inst_class=None, inst_category=None,
                          images: int = 0) -> EvalResult:
    """Class / category IoU (and nIoU when instance statistics are given) from a label-id
    confusion matrix."""
    evaluated = np.flatnonzero(_EVALUATED)
    class_iou, class_niou = {}, {}
    for name in TRAIN_CLASSES:
        lid = next(l.id for l in LABELS if l.name == name)
        tp = confusion[lid, lid]
        fn = confusion[lid].sum() - tp
        fp = confusion[evaluated[evaluated != lid], lid].sum()   # only on evaluated ground truth
        class_iou[name] = _ratio(tp, fp, fn)
        if inst_class is not None and name in inst_class:
            class_niou[name] = _ratio(inst_class[name][0], fp, inst_class[name][1])
        else:
            class_niou[name] = float("nan")
    category_iou, category_niou = {}, {}
    for category in CATEGORIES:
        ids = [l.id for l in LABELS if l.category == category and not l.ignore_in_eval]
        others = [l.id for l in LABELS if l.category != category and not l.ignore_in_eval]
        tp = confusion[np.ix_(ids, ids)].sum()
        fn = confusion[ids].sum() - tp
        fp = confusion[np.ix_(others, ids)].sum()
        category_iou[category] = _ratio(tp, fp, fn)
        if inst_category is not None and category in inst_category:
            # nIoU false positives count every label of the category, the ignored
            # instance classes (caravan, trailer) included, as the official code does.
            all_ids = [l.id for l in LABELS if l.category == category]
            fp_all = confusion[np.ix_(others, all_ids)].sum()
            category_niou[category] = _ratio(inst_category[category][0], fp_all, inst_category[category][1])
        else:
            category_niou[category] = float("nan")
    return EvalResult(confusion, class_iou, class_niou, category_iou, category_niou, images)


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


# ----------------------------------------------------------------------- file pairing

def _read_label_png(path: Path) -> np.ndarray:
    from PIL import Image  # Pillow keeps palette indices (OpenCV would expand them to colour)
    try:
        with Image.open(path) as img:
            arr = np.array(img)
    except (OSError, ValueError) as exc:
        raise EvalInputError(f"{path}: cannot read image ({exc})") from None
    if arr.ndim != 2:
        raise EvalInputError(f"{path}: expected a single-channel label image, got shape {arr.shape}")
    return arr


def _gt_key(path: Path) -> str:
    # frankfurt_000000_000294_gtFine_labelIds.png -> frankfurt_000000_000294
    name = path.name
    for marker in ("_gtFine", "_gtCoarse"):
        if marker in name:
            return name.split(marker)[0]
    return path.stem


def pair_files(pred_dir: Path, label_dir: Path, pattern: str | None = None) -> list[tuple[Path, Path]]:
    """Match each ground-truth PNG under `label_dir` to the one prediction PNG under
    `pred_dir` whose name is the ground truth's frame key (``city_seq_frame``), optionally
    followed by ``_<anything>``."""
    if not label_dir.is_dir():
        raise EvalInputError(f"{label_dir}: label directory not found")
    if not pred_dir.is_dir():
        raise EvalInputError(f"{pred_dir}: prediction directory not found")
    if pattern is None:
        pattern = "*_gtFine_labelIds.png" if any(label_dir.rglob("*_gtFine_labelIds.png")) else "*.png"
    gts = sorted(p for p in label_dir.rglob(pattern) if "_instanceIds" not in p.name)
    if not gts:
        raise EvalInputError(f"{label_dir}: no ground-truth images matching {pattern}")
    by_stem: dict[str, list[Path]] = {}
    for p in pred_dir.rglob("*.png"):
        by_stem.setdefault(p.stem, []).append(p)
    pairs = []
    for gt in gts:
        key = _gt_key(gt)
        found = [p for stem, ps in by_stem.items() if stem == key or stem.startswith(key + "_") for p in ps]
        if not found:
            raise EvalInputError(f"{gt}: no prediction named {key}[_*].png under {pred_dir}")
        if len(found) > 1:
            raise EvalInputError(f"{gt}: several predictions match: {', '.join(map(str, found[:3]))}")
        pairs.append((found[0], gt))
    return pairs


def _label_format(gt: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    if "labelTrainIds" in gt.name or "trainIds" in gt.name:
        return "trainid"
    if "labelIds" in gt.name:
        return "labelid"
    raise EvalInputError(f"{gt}: cannot tell label ids from train ids by the name; pass --label-format")


def _to_labelids(arr: np.ndarray, fmt: str, path: Path) -> np.ndarray:
    if fmt == "labelid":
        return arr
    valid = (arr < NUM_TRAIN_CLASSES) | (arr == IGNORE_TRAIN_ID)
    if not valid.all():
        bad = np.unique(arr[~valid])[:5].tolist()
        raise EvalInputError(f"{path}: train ids {bad} outside 0..{NUM_TRAIN_CLASSES - 1} and {IGNORE_TRAIN_ID}")
    return trainid_to_labelid_lut()[arr]


def evaluate_dirs(pred_dir: Path, label_dir: Path, label_format: str = "auto",
                  pred_format: str = "trainid", pattern: str | None = None,
                  progress: bool = True) -> tuple[EvalResult, str]:
    """Evaluate a directory of prediction PNGs against a Cityscapes-style label directory.
    Returns the result and the search description printed on the report's first line."""
    from tqdm import tqdm

    pairs = pair_files(pred_dir, label_dir, pattern)
    evaluator = CityscapesEvaluator()
    for pred_path, gt_path in tqdm(pairs, desc="cityscapes eval", unit="img", disable=not progress):
        fmt = _label_format(gt_path, label_format)
        gt = _to_labelids(_read_label_png(gt_path), fmt, gt_path)
        pred = _to_labelids(_read_label_png(pred_path), pred_format, pred_path)
        inst_path = gt_path.with_name(gt_path.name.replace("_labelIds", "_instanceIds"))
        instances = None
        if fmt == "labelid" and inst_path != gt_path and inst_path.is_file():
            instances = _read_label_png(inst_path).astype(np.int64)
        evaluator.add(pred, gt, instances, where=f"{pred_path} vs {gt_path}")
    search = str(label_dir / "**" / (pattern or ("*_gtFine_labelIds.png"
                                                   if "_gtFine_labelIds" in pairs[0][1].name else "*.png")))
    return evaluator.result(), search


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
