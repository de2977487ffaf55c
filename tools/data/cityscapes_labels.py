"""The Cityscapes label definitions (ids, train ids, categories, instance flags), the nIoU
instance-size weights, and the label id <-> train id tables."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
LABEL_ID = {label.name: label.id for label in LABELS}
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
