"""The evaluation core: the label-id confusion matrix and instance statistics of image
pairs, and the class / category IoU and nIoU computed from them.

The definitions follow the official cityscapesScripts evaluation:

* the confusion matrix is counted over label ids (ground truth row, prediction column);
* class IoU = TP / (TP + FP + FN) where FN is every other prediction on a ground-truth pixel
  of the class and FP only counts pixels whose ground truth is a label kept in the
  evaluation (pixels of "ignored" labels, trainId 255, never count as false positives);
* category IoU is the same over the union of a category's evaluated labels;
* nIoU (classes with instances) weights each instance's TP/FN by the average instance size
  of its class over its own size, when instance-id maps are available; ``nan`` otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dfseg.base.errors import InputError

from .cityscapes_labels import AVG_INSTANCE_SIZE, CATEGORIES, LABELS, NUM_LABEL_IDS, TRAIN_CLASSES

_EVALUATED = np.array([not l.ignore_in_eval for l in LABELS])


class EvalInputError(InputError, ValueError):
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
