"""Caffe LMDB databases of encoded ``Datum`` records: image folders and list files in,
records out, every record checked.

A database is written under a temporary name beside its destination and renamed only when
every record is in (:class:`AtomicLmdbWriter`, :func:`write_lmdb_group` for aligned image and
label databases), so an interrupted run never leaves something that looks finished.  A
database is read through one read-only environment per process (:func:`open_readonly`), which
refuses a truncated file before LMDB's memory map could kill the process.

The command line is ``python -m tools.lmdb_tools``.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

from dfseg.base.errors import InputError
from dfseg.base.textfile import read_text
from prototxt_gen import caffe_pb2

__all__ = ["IMAGE_SUFFIXES", "AtomicLmdbWriter", "DataError", "ImageRecord", "build_lmdb", "datum_key",
           "decode_datum", "encode_datum", "iterate_lmdb", "lmdb_count", "open_readonly", "read_image",
           "read_list_file", "scan_image_folder", "verify_lmdb", "write_arrays_lmdb", "write_lmdb_group"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
_INITIAL_MAP_SIZE = 1 << 30


class DataError(InputError, ValueError):
    """Unusable data; the message names the file or record."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: int


# --------------------------------------------------------------------------- sources
def scan_image_folder(root: str | Path) -> tuple[list[ImageRecord], list[str]]:
    """``root/<class>/<image>`` -> records labelled by the sorted class-folder index."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(f"{root}: no class sub-folders found")
    records = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                records.append(ImageRecord(path, label))
    if not records:
        raise DataError(f"{root}: no images found in its class folders")
    return records, classes


def read_list_file(list_file: str | Path, root: str | Path | None = None) -> list[ImageRecord]:
    """Caffe's ``path label`` lines; ``root`` defaults to the list file's folder."""
    list_file = Path(list_file)
    base = Path(root) if root is not None else list_file.parent
    records = []
    for n, line in enumerate(read_text(list_file, "list file").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{list_file}:{n}: expected 'path label', got {line!r}")
        try:
            label = int(parts[1])
        except ValueError:
            raise DataError(f"{list_file}:{n}: label {parts[1]!r} is not an integer") from None
        records.append(ImageRecord(base / parts[0], label))
    if not records:
        raise DataError(f"{list_file}: no records")
    return records


# --------------------------------------------------------------------------- images
def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file; a missing or undecodable file is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), flags)
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt or not an image)")
    return image


def encode_datum(image: np.ndarray, label: int = 0, fmt: str = ".png") -> caffe_pb2.Datum:
    """An encoded ``Datum`` as Caffe's ``convert_imageset --encoded`` writes it."""
    ok, buf = cv2.imencode(fmt, image)
    if not ok:
        raise DataError(f"cannot encode image as {fmt}")
    datum = caffe_pb2.Datum(encoded=True, data=buf.tobytes(), label=int(label))
    datum.height, datum.width = image.shape[:2]
    datum.channels = 1 if image.ndim == 2 else image.shape[2]
    return datum


def decode_datum(raw: bytes, flags: int = cv2.IMREAD_UNCHANGED, where: str = "record") -> tuple[np.ndarray, int]:
    """(image, label) of a serialized ``Datum``, encoded or raw."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(raw)
    except Exception:
        raise DataError(f"{where}: not a Caffe Datum") from None
    if datum.encoded:
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), flags)
        if image is None:
            raise DataError(f"{where}: cannot decode the encoded image")
    else:
        expected = datum.channels * datum.height * datum.width
        if len(datum.data) != expected or expected == 0:
            raise DataError(f"{where}: raw Datum has {len(datum.data)} bytes, header says {expected}")
        image = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
        image = image.transpose(1, 2, 0) if datum.channels > 1 else image[0]
    return image, datum.label


# --------------------------------------------------------------------------- writing
def datum_key(index: int) -> bytes:
    return f"{index:08d}".encode()


class AtomicLmdbWriter:
    """Writes ``dest`` as ``dest.partial-<pid>``; :meth:`commit` renames it into place.

    Records go in batches, one transaction each; a batch that overflows the memory map
    grows the map and is written again.  :meth:`discard` removes the partial database.
    """

    def __init__(self, dest: str | Path):
        self.dest = Path(dest)
        if self.dest.exists():
            raise DataError(f"{self.dest}: already exists (remove it first)")
        self.tmp = self.dest.with_name(f"{self.dest.name}.partial-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.tmp), map_size=_INITIAL_MAP_SIZE, subdir=True)
        self.count = 0

    def put_batch(self, items: list[tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:  # the transaction was aborted: grow and write again
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        self.count += len(items)

    def commit(self) -> Path:
        self.env.close()
        os.replace(self.tmp, self.dest)
        return self.dest

    def discard(self) -> None:
        self.env.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_lmdb_group(dests: list[str | Path], rows: Iterable[tuple[bytes, ...]], total: int | None = None,
                     desc: str = "writing LMDB", batch: int = 256) -> int:
    """Write aligned databases atomically: each row is ``(key, value_0, value_1, ...)``, value
    ``i`` going to ``dests[i]`` under the same key.  All are renamed into place only after
    every row is written; any error removes them all."""
    writers: list[AtomicLmdbWriter] = []
    try:
        for d in dests:
            writers.append(AtomicLmdbWriter(d))
        pending: list[tuple[bytes, ...]] = []
        for row in tqdm(rows, total=total, desc=desc, unit="img", disable=None):
            pending.append(row)
            if len(pending) >= batch:
                for i, w in enumerate(writers):
                    w.put_batch([(r[0], r[1 + i]) for r in pending])
                pending = []
        for i, w in enumerate(writers):
            w.put_batch([(r[0], r[1 + i]) for r in pending])
    except BaseException:
        for w in writers:
            w.discard()
        raise
    for w in writers:
        w.commit()
    return writers[0].count if writers else 0


def build_lmdb(records: list[ImageRecord], out: str | Path, *, resize: tuple[int, int] | None = None,
               fmt: str = ".png", gray: bool = False) -> int:
    """Encode ``records`` into the LMDB ``out``; returns the number of records."""
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR

    def rows():
        for i, rec in enumerate(records):
            image = read_image(rec.path, flags)
            if resize is not None:
                image = cv2.resize(image, (resize[1], resize[0]), interpolation=cv2.INTER_AREA)
            yield datum_key(i), encode_datum(image, rec.label, fmt).SerializeToString()

    return write_lmdb_group([out], rows(), total=len(records), desc=f"building {Path(out).name}")


def write_arrays_lmdb(images: np.ndarray, labels: np.ndarray, out: str | Path, fmt: str = ".png") -> int:
    """In-memory uint8 images (N,H,W[,C]) and labels -> LMDB (used for bundled data sets)."""
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    rows = ((datum_key(i), encode_datum(img, int(lbl), fmt).SerializeToString())
            for i, (img, lbl) in enumerate(zip(images, labels)))
    return write_lmdb_group([out], rows, total=len(images), desc=f"building {Path(out).name}")


# --------------------------------------------------------------------------- reading
_READERS: dict[tuple[int, str], lmdb.Environment] = {}


def open_readonly(path: str | Path) -> lmdb.Environment:
    """The read-only environment of an LMDB, opened once per process and kept (py-lmdb
    refuses to open the same database twice in one process)."""
    path = Path(path)
    if not (path / "data.mdb").is_file():
        raise DataError(f"{path}: not an LMDB database (no data.mdb)")
    key = (os.getpid(), str(path.resolve()))
    if key not in _READERS:
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
        except lmdb.Error as e:
            raise DataError(f"{path}: not a readable LMDB database ({e})") from None
        try:
            _check_not_truncated(env, path / "data.mdb")
        except DataError:
            env.close()
            raise
        _READERS[key] = env
    return _READERS[key]


def _check_not_truncated(env: lmdb.Environment, data_file: Path) -> None:
    """LMDB reads its file through a memory map: a page past the end of a truncated data.mdb
    kills the process with SIGBUS.  The meta page names the last page in use; the file must
    reach it before anything is read."""
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = data_file.stat().st_size
    if size < needed:
        raise DataError(f"{data_file}: truncated LMDB file ({size} bytes, its meta page needs "
                        f"{needed}: {needed - size} bytes are missing)")


def iterate_lmdb(path: str | Path) -> Iterator[tuple[bytes, bytes]]:
    with open_readonly(path).begin() as txn:
        yield from txn.cursor()


def lmdb_count(path: str | Path) -> int:
    return open_readonly(path).stat()["entries"]


def verify_lmdb(path: str | Path, num_classes: int | None = None) -> dict:
    """Decode every record; counts, shapes and the label histogram.  The first bad record
    (undecodable, or label outside ``[0, num_classes)``) raises a :class:`DataError`."""
    labels: Counter[int] = Counter()
    shapes: Counter[str] = Counter()
    count = 0
    for key, raw in tqdm(iterate_lmdb(path), total=lmdb_count(path), desc=f"verifying {Path(path).name}",
                         unit="img", disable=None):
        where = f"{path} record {key.decode(errors='replace')}"
        image, label = decode_datum(raw, where=where)
        if num_classes is not None and not 0 <= label < num_classes:
            raise DataError(f"{where}: label {label} outside the class range [0, {num_classes})")
        labels[label] += 1
        shapes["x".join(map(str, image.shape))] += 1
        count += 1
    return {"path": str(path), "count": count, "decodable": count,
            "labels": {str(k): v for k, v in sorted(labels.items())},
            "shapes": dict(shapes.most_common())}
