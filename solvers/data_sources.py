"""Random-access readers for the Python data layers (no Caffe needed).

* :class:`ClassificationSource` — an LMDB of encoded ``Datum`` records (our
  :mod:`tools.data.lmdb_store`, or Caffe's ``convert_imageset``) or a ``path label`` list file.
* :class:`SegmentationSource` — an ``image label`` list file (label maps in train ids, e.g.
  from ``python -m tools.cityscapes_data list``) or an image LMDB plus a label LMDB with the same keys.

Every record is checked as it is read: an undecodable file, a label map whose size differs
from its image's, or a label outside ``[0, num_classes)`` (other than the ignore label)
raises :class:`~tools.data.lmdb_store.DataError` naming the file or record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tools.data.cityscapes_dataset import read_pair_list
from tools.data.lmdb_store import DataError, decode_datum, open_readonly, read_image, read_list_file

from .augment import Transform


def _is_lmdb(path: Path) -> bool:
    return (path / "data.mdb").is_file()


class _Lmdb:
    """Read-only LMDB with its keys listed once."""

    def __init__(self, path: Path):
        self.path = path
        with open_readonly(path).begin() as txn:
            self.keys = [k for k, _ in txn.cursor()]

    def get(self, key: bytes) -> bytes:
        with open_readonly(self.path).begin() as txn:
            return txn.get(key)


class ClassificationSource:
    def __init__(self, source: str | Path, root: str | Path | None = None, num_classes: int | None = None,
                 channels: int = 3):
        self.source = Path(source)
        self.num_classes = num_classes
        self.flags = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
        if _is_lmdb(self.source):
            self.db = _Lmdb(self.source)
            self.records = None
            n = len(self.db.keys)
        elif self.source.is_file():
            self.db = None
            self.records = read_list_file(self.source, root)
            n = len(self.records)
        else:
            raise DataError(f"{self.source}: neither an LMDB directory nor a list file")
        if n == 0:
            raise DataError(f"{self.source}: empty")

    def __len__(self) -> int:
        return len(self.db.keys) if self.db is not None else len(self.records)

    def read(self, i: int) -> tuple[np.ndarray, int]:
        if self.db is not None:
            key = self.db.keys[i]
            where = f"{self.source} record {key.decode(errors='replace')}"
            image, label = decode_datum(self.db.get(key), self.flags, where)
        else:
            rec = self.records[i]
            where = str(rec.path)
            image, label = read_image(rec.path, self.flags), rec.label
        if self.num_classes is not None and not 0 <= label < self.num_classes:
            raise DataError(f"{where}: label {label} outside the class range [0, {self.num_classes})")
        return image, label


class SegmentationSource:
    def __init__(self, source: str | Path, label_source: str | Path | None = None,
                 num_classes: int | None = None, ignore_label: int = 255):
        self.source = Path(source)
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        if _is_lmdb(self.source):
            if label_source is None or not _is_lmdb(Path(label_source)):
                raise DataError(f"{self.source}: an image LMDB needs label_source, the label LMDB")
            self.images, self.labels = _Lmdb(self.source), _Lmdb(Path(label_source))
            if self.images.keys != self.labels.keys:
                raise DataError(f"{label_source}: keys differ from those of {self.source}")
            self.pairs = None
        elif self.source.is_file():
            self.pairs = read_pair_list(self.source)
            self.images = self.labels = None
        else:
            raise DataError(f"{self.source}: neither an LMDB directory nor an 'image label' list file")
        if len(self) == 0:
            raise DataError(f"{self.source}: empty")

    def __len__(self) -> int:
        return len(self.pairs) if self.pairs is not None else len(self.images.keys)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self.pairs is not None:
            image_path, label_path = self.pairs[i]
            where = str(label_path)
            image = read_image(image_path, cv2.IMREAD_COLOR)
            label = read_image(label_path, cv2.IMREAD_UNCHANGED)
            image_name = image_path.name
        else:
            key = self.images.keys[i]
            image, _ = decode_datum(self.images.get(key), cv2.IMREAD_COLOR, f"{self.source} record {key.decode()}")
            where = f"{self.labels.path} record {key.decode()}"
            label, _ = decode_datum(self.labels.get(key), cv2.IMREAD_UNCHANGED, where)
            image_name = f"record {key.decode()}"
        if label.ndim != 2:
            raise DataError(f"{where}: label map must have one channel, got shape {label.shape}")
        if label.shape != image.shape[:2]:
            raise DataError(f"{where}: label size {label.shape[1]}x{label.shape[0]} differs from image "
                            f"{image_name} size {image.shape[1]}x{image.shape[0]}")
        if self.num_classes is not None:
            values = np.unique(label)
            bad = values[(values >= self.num_classes) & (values != self.ignore_label)]
            if bad.size:
                raise DataError(f"{where}: label {int(bad[0])} outside the class range [0, {self.num_classes}) "
                                f"(ignore label {self.ignore_label})")
        return image, label


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class DataParams:
    """The layers' ``param_str`` (JSON).  Keys written by the generator for segmentation
    training: source, batch_size, crop, mean, scale, mirror, ignore_label, rand_h, rand_w."""

    source: str
    batch_size: int
    crop: tuple[int, int] | None = None
    resize: tuple[int, int] | None = None
    resize_short: int | None = None
    rand_h: tuple[int, int] | None = None
    rand_w: tuple[int, int] | None = None
    mean: tuple[float, ...] = ()
    scale: float = 1.0
    mirror: bool = False
    ignore_label: int = 255
    num_classes: int | None = None
    label_source: str | None = None
    root: str | None = None
    shuffle: bool | None = None   # default: shuffle in training only
    seed: int = 0
    channels: int = 3

    @classmethod
    def from_json(cls, text: str) -> "DataParams":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"data layer param_str is not JSON: {e}") from None
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise DataError(f"data layer param_str: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        for key in ("source", "batch_size"):
            if key not in raw:
                raise DataError(f"data layer param_str: missing {key!r}")
        for key in ("crop", "resize", "rand_h", "rand_w", "mean"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def to_json(self) -> str:
        """Only the keys that are set (None and empty values left out)."""
        out = {}
        for key, value in self.__dict__.items():
            if value is None or value == ():
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        return json.dumps(out, sort_keys=True)

    def transform(self, train: bool) -> Transform:
        return Transform(crop=self.crop, rand_h=self.rand_h, rand_w=self.rand_w, resize=self.resize,
                         resize_short=self.resize_short,
                         mean=self.mean, scale=self.scale, mirror=self.mirror, train=train,
                         ignore_label=self.ignore_label)
