"""A real, offline classification data set for CPU searches: scikit-learn's handwritten digits.

1,797 8x8 grey-level scans of handwritten digits (0-9, values 0-16; the UCI "optical
recognition of handwritten digits" test set, bundled with scikit-learn).  Upsampled to the
search's input size (bicubic), stretched to 0-255, replicated to 3 channels (the DF stem
takes colour images) and split into train / validation LMDBs by a seeded permutation.

The CPU POP demo's data (its ``prepare`` step, with random affine poses) and the training
tests' data.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from dfseg.base.atomic import atomic_write_text
from tools.data.lmdb_store import write_arrays_lmdb


def load_digits_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 images and (N,) labels."""
    # scikit-learn (~0.7 s to import) only when the digits are actually built, not when the
    # LMDBs are already there
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).astype(np.float32)
    up = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in images])
    up = np.clip(up, 0, 255).astype(np.uint8)
    return np.repeat(up[..., None], 3, axis=3), digits.target.astype(np.int64)


def warped(images: np.ndarray, labels: np.ndarray, copies: int, warp: dict, rng: np.random.Generator):
    """`copies` random affine copies of every image: rotation up to ±warp["rotation"] degrees,
    scale drawn from warp["scale"] [lo, hi], shift up to ±warp["shift"] pixels (black border)."""
    size = images.shape[1]
    out = []
    for _ in range(copies):
        for im in images:
            m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-warp["rotation"], warp["rotation"]),
                                        rng.uniform(*warp["scale"]))
            m[:, 2] += rng.uniform(-warp["shift"], warp["shift"], 2)
            out.append(cv2.warpAffine(im, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)))
    return np.stack(out), np.tile(labels, copies)


def prepare(out_dir: str | Path, size: int = 32, val: int = 497, seed: int = 0, warp: dict | None = None,
            train_copies: int = 1, val_copies: int = 1) -> dict:
    """Write ``train_lmdb`` / ``val_lmdb`` under ``out_dir`` (kept if already complete).
    With `warp`, each split holds `*_copies` random affine copies of its scans (a harder task:
    the split is by scan, so no validation digit is seen in training in any pose)."""
    out = Path(out_dir)
    meta_file = out / "digits.json"
    meta = {"size": size, "val": val, "seed": seed}
    if warp:
        meta.update(warp=warp, train_copies=train_copies, val_copies=val_copies)
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("params") == meta:
        return json.loads(meta_file.read_text())
    images, labels = load_digits_images(size)
    order = np.random.default_rng(seed).permutation(len(images))
    val_idx, train_idx = order[:val], order[val:]
    splits = {"train": (images[train_idx], labels[train_idx]), "val": (images[val_idx], labels[val_idx])}
    if warp:
        rng = np.random.default_rng(seed + 1)
        splits = {"train": warped(*splits["train"], train_copies, warp, rng),
                  "val": warped(*splits["val"], val_copies, warp, rng)}
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train_lmdb", "val_lmdb"):
        shutil.rmtree(out / name, ignore_errors=True)
    write_arrays_lmdb(*splits["train"], out / "train_lmdb")
    write_arrays_lmdb(*splits["val"], out / "val_lmdb")
    info = {"params": meta, "train_db": str((out / "train_lmdb").resolve()),
            "val_db": str((out / "val_lmdb").resolve()), "train_size": len(splits["train"][1]),
            "val_size": len(splits["val"][1]),
            "num_classes": 10, "input_size": [size, size]}
    atomic_write_text(meta_file, json.dumps(info, indent=1))
    return info
