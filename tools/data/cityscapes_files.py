"""Evaluation of a directory of prediction PNGs against Cityscapes-style ground truth:
pairing the files by frame key, reading label PNGs, label id / train id conversion."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cityscapes_labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES, trainid_to_labelid_lut
from .cityscapes_scores import CityscapesEvaluator, EvalInputError, EvalResult

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
