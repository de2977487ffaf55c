"""The authors' training-time pre-processing, in NumPy/OpenCV (no Caffe needed).

"Random scaling and stretching" (the POP fork's ``img_rand_h_lower/upper`` and
``img_rand_w_lower/upper``): every training image is resized to a height drawn uniformly
from ``[h_lower, h_upper]`` and, independently, a width from ``[w_lower, w_upper]`` — equal
draws scale, unequal draws stretch the aspect ratio.  The transformer then crops
``crop_h x crop_w`` (random position in training, centre in testing; an image smaller than
the crop is padded with the mean colour, its label with the ignore label), mirrors at random
in training, subtracts the mean and multiplies by ``scale`` (Caffe's order).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Transform:
    crop: tuple[int, int] | None = None          # (crop_h, crop_w)
    rand_h: tuple[int, int] | None = None        # img_rand_h_lower, img_rand_h_upper
    rand_w: tuple[int, int] | None = None        # img_rand_w_lower, img_rand_w_upper
    resize: tuple[int, int] | None = None        # fixed (H, W) resize when not random
    resize_short: int | None = None              # or: shorter side to this, aspect kept
    mean: tuple[float, ...] = ()
    scale: float = 1.0
    mirror: bool = False
    train: bool = True
    ignore_label: int = 255

    def __post_init__(self) -> None:
        for name in ("rand_h", "rand_w"):
            r = getattr(self, name)
            if r is not None and not (len(r) == 2 and 0 < r[0] <= r[1]):
                raise ValueError(f"{name} must be [lower, upper] with 0 < lower <= upper, got {r}")
        if (self.rand_h is None) != (self.rand_w is None):
            raise ValueError("rand_h and rand_w go together (random scaling and stretching)")

    @property
    def output_hw(self) -> tuple[int, int] | None:
        """Output size when it does not depend on the image (crop or fixed resize)."""
        return self.crop or self.resize


def random_size(rng: np.random.Generator, rand_h: tuple[int, int], rand_w: tuple[int, int]) -> tuple[int, int]:
    """One draw of the scaling-and-stretching target size (H, W), bounds inclusive."""
    return int(rng.integers(rand_h[0], rand_h[1] + 1)), int(rng.integers(rand_w[0], rand_w[1] + 1))


def _crop_offsets(rng: np.random.Generator, hw: tuple[int, int], crop: tuple[int, int], train: bool):
    (h, w), (ch, cw) = hw, crop
    if train:
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return (h - ch) // 2, (w - cw) // 2


def _pad_to(array: np.ndarray, crop: tuple[int, int], value) -> np.ndarray:
    h, w = array.shape[:2]
    ph, pw = max(0, crop[0] - h), max(0, crop[1] - w)
    if not ph and not pw:
        return array
    # pad bottom/right, like PSPNet's data layer; constant = mean colour or ignore label
    return cv2.copyMakeBorder(array, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=value)


def apply(t: Transform, rng: np.random.Generator, image: np.ndarray,
          label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """HxWxC uint8 image (and HxW label map) -> CxHxW float32 blob (and HxW float32 label)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if t.train and t.rand_h is not None:
        target = random_size(rng, t.rand_h, t.rand_w)
    elif t.resize_short is not None:
        h, w = image.shape[:2]
        k = t.resize_short / min(h, w)
        target = (max(1, round(h * k)), max(1, round(w * k)))
    else:
        target = t.resize
    if target is not None and target != image.shape[:2]:
        image = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)
        if image.ndim == 2:
            image = image[:, :, None]
        if label is not None:
            label = cv2.resize(label, (target[1], target[0]), interpolation=cv2.INTER_NEAREST)
    if t.crop is not None:
        mean = list(t.mean) if t.mean else [0.0]
        fill = (mean * image.shape[2])[: image.shape[2]] if len(mean) == 1 else mean
        image = _pad_to(image, t.crop, [float(v) for v in fill] + [0.0] * (4 - len(fill)))
        if image.ndim == 2:
            image = image[:, :, None]
        if label is not None:
            label = _pad_to(label, t.crop, t.ignore_label)
        y, x = _crop_offsets(rng, image.shape[:2], t.crop, t.train)
        image = image[y:y + t.crop[0], x:x + t.crop[1]]
        if label is not None:
            label = label[y:y + t.crop[0], x:x + t.crop[1]]
    if t.mirror and t.train and rng.random() < 0.5:
        image = image[:, ::-1]
        if label is not None:
            label = label[:, ::-1]
    blob = image.astype(np.float32)
    if t.mean:
        blob -= np.asarray(t.mean, np.float32)
    if t.scale != 1.0:
        blob *= t.scale
    blob = np.ascontiguousarray(blob.transpose(2, 0, 1))
    return blob, (None if label is None else np.ascontiguousarray(label, dtype=np.float32))
