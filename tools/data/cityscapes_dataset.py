"""Cityscapes on disk -> training lists or LMDB pairs (label ids turned into train ids), and
a small generated data set in the same layout for smoke runs.

Layout (as the data set ships)::

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

Label images hold Cityscapes *label ids* (0..33); training uses the 19 *train ids*
(0..18) and 255 for everything ignored (the one label table: tools.data.cityscapes_labels).
Every pair is checked: both decode, same size, label ids inside the defined range —
otherwise a :class:`~tools.data.lmdb_store.DataError` naming the file.

The command line is ``python -m tools.cityscapes_data``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dfseg.base.atomic import atomic_write_bytes, atomic_write_text
from dfseg.base.textfile import read_text

from .cityscapes_labels import LABEL_ID, NUM_LABEL_IDS, labelid_to_trainid_lut
from .lmdb_store import DataError, datum_key, encode_datum, read_image, write_lmdb_group

__all__ = ["IMAGE_SUFFIX", "LABEL_SUFFIX", "TRAIN_ID_SUFFIX", "Pair", "build_lmdb_pairs", "load_pair",
           "make_synthetic", "read_pair_list", "scan", "synth_frame", "to_train_ids", "write_lists"]

MAX_LABEL_ID = NUM_LABEL_IDS - 1
# ids beyond MAX_LABEL_ID are flagged by to_train_ids (the table would only ignore them)
_TRAIN_ID_LUT = labelid_to_trainid_lut()
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
    return _TRAIN_ID_LUT[label_ids]


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
        _write_png(dest, train_ids)
        lines.append(f"{pair.image.resolve()} {dest.resolve()}")
    list_file = out_dir / f"{split}.txt"
    atomic_write_text(list_file, "\n".join(lines) + "\n")
    return list_file


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"{path}: cannot encode the image as PNG")
    atomic_write_bytes(path, buf.tobytes())


def read_pair_list(list_file: str | Path) -> list[tuple[Path, Path]]:
    """``image label`` lines (label images already in train ids)."""
    list_file = Path(list_file)
    pairs = []
    for n, line in enumerate(read_text(list_file, "list file").splitlines(), 1):
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
                _write_png(root / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}", image)
                _write_png(root / "gtFine" / split / city / f"{stem}{LABEL_SUFFIX}", labels)
                counts[split] += 1
    return counts
