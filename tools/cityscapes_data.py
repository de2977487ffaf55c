"""Cityscapes on disk -> training lists or LMDB pairs, with the official labelId -> trainId map.

Layout (as the data set ships)::

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

Label images hold Cityscapes *label ids* (0..33); training uses the 19 *train ids*
(0..18) and 255 for everything ignored.  Every pair is checked: both decode, same size,
label ids inside the defined range — otherwise a :class:`~tools.lmdb_tools.DataError`
naming the file.

CLI::

    python -m tools.cityscapes_data list ROOT --split train --out DIR
        # DIR/train.txt ("image trainIdLabel" lines) + DIR/gtFine_trainIds/... label images
    python -m tools.cityscapes_data lmdb ROOT --split train --out DIR [--resize HxW]
        # DIR/train_image_lmdb + DIR/train_label_lmdb, same keys
    python -m tools.cityscapes_data synth ROOT [--size 64x128] [--per-city 4]
        # a small generated data set laid out exactly like Cityscapes (for smoke runs)
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dfseg.base.cli import run_cli
from tools.lmdb_tools import DataError, datum_key, encode_datum, parse_size, read_image, write_lmdb_group
from dfseg.base.atomic import atomic_write_text

IGNORE = 255

# (name, labelId, trainId) of the official Cityscapes label definition (cityscapesScripts'
# labels.py); only the 19 evaluated classes get a train id.
LABELS: tuple[tuple[str, int, int], ...] = (
    ("unlabeled", 0, IGNORE), ("ego vehicle", 1, IGNORE), ("rectification border", 2, IGNORE),
    ("out of roi", 3, IGNORE), ("static", 4, IGNORE), ("dynamic", 5, IGNORE), ("ground", 6, IGNORE),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, IGNORE), ("rail track", 10, IGNORE),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, IGNORE),
    ("bridge", 15, IGNORE), ("tunnel", 16, IGNORE), ("pole", 17, 5), ("polegroup", 18, IGNORE),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, IGNORE), ("trailer", 30, IGNORE), ("train", 31, 16),
    ("motorcycle", 32, 17), ("bicycle", 33, 18),
)
MAX_LABEL_ID = max(lid for _, lid, _ in LABELS)
NUM_CLASSES = 19
CLASS_NAMES: tuple[str, ...] = tuple(name for name, _, tid in sorted(LABELS, key=lambda l: l[2]) if tid != IGNORE)
LABEL_ID = {name: lid for name, lid, _ in LABELS}

# 256-entry look-up table; ids beyond MAX_LABEL_ID are flagged separately (not silently ignored).
TRAIN_ID_LUT = np.full(256, IGNORE, np.uint8)
for _name, _lid, _tid in LABELS:
    TRAIN_ID_LUT[_lid] = _tid

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"


@dataclass(frozen=True)
class Pair:
    image: Path
    label: Path  # labelIds image


def to_train_ids(label_ids: np.ndarray, where: str | Path = "label") -> np.ndarray:
    """labelId image -> trainId image (0..18, 255 ignored)."""
    if label_ids.ndim != 2:
        raise DataError(f"{where}: label image must have one channel, got shape {label_ids.shape}")
    if label_ids.size and int(label_ids.max()) > MAX_LABEL_ID:
        bad = int(label_ids.max())
        raise DataError(f"{where}: label id {bad} outside the Cityscapes range [0, {MAX_LABEL_ID}]")
    return TRAIN_ID_LUT[label_ids]


def scan(root: str | Path, split: str) -> list[Pair]:
    """Every (image, labelIds) pair of ``split``; an image without its label is an error."""
    root = Path(root)
    image_dir = root / "leftImg8bit" / split
    label_dir = root / "gtFine" / split
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"{d}: missing (expected the Cityscapes layout leftImg8bit/{split}, gtFine/{split})")
    pairs = []
    for image in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}")):
        stem = image.name[: -len(IMAGE_SUFFIX)]
        label = label_dir / image.parent.name / f"{stem}{LABEL_SUFFIX}"
        if not label.is_file():
            raise DataError(f"{image}: no label image {label}")
        pairs.append(Pair(image, label))
    if not pairs:
        raise DataError(f"{image_dir}: no *{IMAGE_SUFFIX} images in city folders")
    return pairs


def load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, trainId label), checked."""
    image = read_image(pair.image, cv2.IMREAD_COLOR)
    label_ids = read_image(pair.label, cv2.IMREAD_UNCHANGED)
    if label_ids.ndim == 3:
        raise DataError(f"{pair.label}: label image has {label_ids.shape[2]} channels, expected 1 (labelIds)")
    if label_ids.shape[:2] != image.shape[:2]:
        raise DataError(f"{pair.label}: label size {label_ids.shape[1]}x{label_ids.shape[0]} differs from "
                        f"image {pair.image.name} size {image.shape[1]}x{image.shape[0]}")
    return image, to_train_ids(label_ids.astype(np.uint16) if label_ids.dtype != np.uint8 else label_ids,
                               pair.label)


def write_lists(root: str | Path, split: str, out_dir: str | Path) -> Path:
    """``out/{split}.txt`` of ``image trainIdLabel`` lines (absolute paths) and the trainId
    label images under ``out/gtFine_trainIds/{split}/{city}/``."""
    out_dir = Path(out_dir)
    lines = []
    for pair in tqdm(scan(root, split), desc=f"{split}: labelIds -> trainIds", unit="img", disable=None):
        _, train_ids = load_pair(pair)
        dest = out_dir / "gtFine_trainIds" / split / pair.label.parent.name / \
            pair.label.name.replace(LABEL_SUFFIX, TRAIN_ID_SUFFIX)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dest), train_ids):
            raise DataError(f"{dest}: cannot write")
        lines.append(f"{pair.image.resolve()} {dest.resolve()}")
    list_file = out_dir / f"{split}.txt"
    atomic_write_text(list_file, "\n".join(lines) + "\n")
    return list_file


def read_pair_list(list_file: str | Path) -> list[tuple[Path, Path]]:
    """``image label`` lines (label images already in train ids)."""
    list_file = Path(list_file)
    pairs = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{list_file}:{n}: expected 'image label', got {line!r}")
        pairs.append((Path(parts[0]), Path(parts[1])))
    return pairs


def build_lmdb_pairs(root: str | Path, split: str, out_dir: str | Path,
                     resize: tuple[int, int] | None = None) -> tuple[Path, Path, int]:
    """``out/{split}_image_lmdb`` and ``out/{split}_label_lmdb`` (train ids), same keys."""
    pairs = scan(root, split)
    out_dir = Path(out_dir)
    dests = [out_dir / f"{split}_image_lmdb", out_dir / f"{split}_label_lmdb"]

    def rows():
        for i, pair in enumerate(pairs):
            image, label = load_pair(pair)
            if resize is not None:
                image = cv2.resize(image, (resize[1], resize[0]), interpolation=cv2.INTER_LINEAR)
                label = cv2.resize(label, (resize[1], resize[0]), interpolation=cv2.INTER_NEAREST)
            yield (datum_key(i), encode_datum(image, 0, ".png").SerializeToString(),
                   encode_datum(label, 0, ".png").SerializeToString())

    n = write_lmdb_group(dests, rows(), total=len(pairs), desc=f"{split} -> LMDB pairs")
    return dests[0], dests[1], n


# --------------------------------------------------------------------------- synthetic set
# Scene classes of the generated frames: label id -> BGR base colour.
_SYNTH_COLOURS = {
    LABEL_ID["sky"]: (180, 130, 70), LABEL_ID["building"]: (70, 70, 70),
    LABEL_ID["vegetation"]: (35, 142, 107), LABEL_ID["road"]: (128, 64, 128),
    LABEL_ID["sidewalk"]: (232, 35, 244), LABEL_ID["car"]: (142, 0, 0),
    LABEL_ID["person"]: (60, 20, 220), LABEL_ID["ego vehicle"]: (0, 0, 0),
}


def synth_frame(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One street-like frame: sky, buildings/vegetation, road, sidewalk, cars, people and an
    ego-vehicle strip (ignored), with noise so that colour alone is not a perfect cue."""
    h, w = size
    labels = np.full((h, w), LABEL_ID["sky"], np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.5))
    x = 0
    while x < w:  # skyline of buildings and trees
        bw = int(rng.integers(w // 10, w // 4))
        top = int(rng.integers(h // 10, horizon))
        labels[top:horizon, x:x + bw] = LABEL_ID["building"] if rng.random() < 0.6 else LABEL_ID["vegetation"]
        x += bw
    labels[horizon:, :] = LABEL_ID["road"]
    side = int(w * rng.uniform(0.1, 0.25))
    rows = np.arange(horizon, h)
    for r in rows:  # sidewalks widen towards the camera
        extent = int(side * (r - horizon) / max(1, h - horizon)) + 1
        labels[r, :extent] = LABEL_ID["sidewalk"]
        labels[r, w - extent:] = LABEL_ID["sidewalk"]
    for _ in range(int(rng.integers(1, 4))):  # cars on the road
        ch, cw = int(rng.integers(h // 12, h // 5)), int(rng.integers(w // 10, w // 4))
        cy = int(rng.integers(horizon, max(horizon + 1, h - ch - h // 10)))
        cx = int(rng.integers(0, w - cw))
        labels[cy:cy + ch, cx:cx + cw] = LABEL_ID["car"]
    for _ in range(int(rng.integers(0, 3))):  # people on the sidewalks
        ph, pw = int(rng.integers(h // 8, h // 4)), max(2, w // 40)
        py = int(rng.integers(horizon - ph // 2, h - ph))
        px = int(rng.integers(0, max(1, side))) if rng.random() < 0.5 else int(rng.integers(w - side, w - pw))
        labels[py:py + ph, px:px + pw] = LABEL_ID["person"]
    labels[h - max(1, h // 16):, :] = LABEL_ID["ego vehicle"]
    image = np.zeros((h, w, 3), np.float32)
    for lid, colour in _SYNTH_COLOURS.items():
        image[labels == lid] = colour
    shade = rng.uniform(0.7, 1.2)  # per-frame illumination
    image = image * shade + rng.normal(0, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def make_synthetic(root: str | Path, *, size: tuple[int, int] = (64, 128),
                   cities: dict[str, tuple[str, ...]] | None = None, per_city: int = 4,
                   seed: int = 0) -> dict[str, int]:
    """Write a generated data set in the exact Cityscapes layout; returns images per split."""
    cities = cities or {"train": ("aachen", "bochum"), "val": ("frankfurt",)}
    rng = np.random.default_rng(seed)
    root = Path(root)
    counts = {}
    for split, names in cities.items():
        counts[split] = 0
        for city in names:
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            for i in range(per_city):
                image, labels = synth_frame(rng, size)
                stem = f"{city}_{i:06d}_000019"
                cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}"), image)
                cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}{LABEL_SUFFIX}"), labels)
                counts[split] += 1
    return counts


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.cityscapes_data", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    li = sub.add_parser("list", help="image/trainId-label list and trainId label images")
    li.add_argument("root")
    li.add_argument("--split", default="train")
    li.add_argument("--out", required=True)
    lm = sub.add_parser("lmdb", help="image and label LMDBs with the same keys")
    lm.add_argument("root")
    lm.add_argument("--split", default="train")
    lm.add_argument("--out", required=True)
    lm.add_argument("--resize", help="HxW (labels resized with nearest neighbour)")
    sy = sub.add_parser("synth", help="generate a small data set in the Cityscapes layout")
    sy.add_argument("root")
    sy.add_argument("--size", default="64x128", help="HxW of the frames")
    sy.add_argument("--per-city", type=int, default=4)
    sy.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    def run() -> int:
        if args.cmd == "list":
            print(write_lists(args.root, args.split, args.out))
        elif args.cmd == "lmdb":
            img, lbl, n = build_lmdb_pairs(args.root, args.split, args.out,
                                           parse_size(args.resize) if args.resize else None)
            print(f"{img}, {lbl}: {n} pairs")
        else:
            counts = make_synthetic(args.root, size=parse_size(args.size), per_city=args.per_city, seed=args.seed)
            print(f"{args.root}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
        return 0

    return run_cli(run, "cityscapes_data", expected=(DataError,))


if __name__ == "__main__":
    sys.exit(main())
