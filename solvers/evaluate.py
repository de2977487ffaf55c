"""Classification accuracy: top-1 / top-5 with a single centre crop.

Every image is resized (shorter side to ``resize_short``, as for ImageNet's 256 -> 224, or to
a fixed ``HxW``), centre-cropped to the net's input size, mean-subtracted and scaled, then
run through a deploy net (Input layer); the last output (``prob`` or the classifier) ranks
the classes.

CLI::

    python -m solvers.evaluate NET WEIGHTS DATA [--resize-short 256] [--mean 104,117,123]
        [--scale 0.008] [--batch 50] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from tools.lmdb_tools import DataError, parse_size

from .augment import Transform, apply
from .caffe_env import CaffeUnavailable, load_caffe
from .data_sources import ClassificationSource


@dataclass(frozen=True)
class TopK:
    top1: float
    top5: float
    count: int

    def as_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, "count": self.count}


def topk_counts(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> tuple[int, int]:
    """(top-1 hits, top-k hits) of a batch of class scores (N×C) against labels (N)."""
    scores = scores.reshape(len(scores), -1)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    labels = labels.astype(np.int64).reshape(-1, 1)
    return int((top[:, :1] == labels).sum()), int((top == labels).any(axis=1).sum())


def evaluate_classifier(net, source: ClassificationSource, transform: Transform, batch: int = 50,
                        output: str | None = None, limit: int | None = None, progress: bool = True) -> TopK:
    """Top-1/top-5 of a pycaffe deploy ``net`` (input blob ``data``) over ``source``."""
    output = output or net.outputs[-1]
    n = len(source) if limit is None else min(limit, len(source))
    hits1 = hits5 = 0
    rng = np.random.default_rng(0)  # unused by a test-mode transform, required by the API
    for start in tqdm(range(0, n, batch), desc="evaluating", unit="batch", disable=None if progress else True):
        images, labels = [], []
        for i in range(start, min(start + batch, n)):
            image, label = source.read(i)
            blob, _ = apply(transform, rng, image)
            images.append(blob)
            labels.append(label)
        data = np.stack(images)
        net.blobs["data"].reshape(*data.shape)
        net.blobs["data"].data[...] = data
        scores = net.forward()[output]
        h1, h5 = topk_counts(scores.copy(), np.asarray(labels))
        hits1 += h1
        hits5 += h5
    return TopK(hits1 / n, hits5 / n, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solvers.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("net", help="deploy prototxt (Input layer)")
    ap.add_argument("weights", help="caffemodel")
    ap.add_argument("data", help="LMDB of Datums or 'path label' list file")
    ap.add_argument("--root", help="folder of the list file's paths")
    ap.add_argument("--crop", help="HxW centre crop (default: the net's input size)")
    ap.add_argument("--resize-short", type=int, help="shorter side before the crop (e.g. 256)")
    ap.add_argument("--resize", help="fixed HxW before the crop")
    ap.add_argument("--mean", default="104,117,123", help="per-channel BGR mean ('' for none)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        caffe = load_caffe()
        net = caffe.Net(args.net, caffe.TEST, weights=args.weights)
        shape = net.blobs["data"].data.shape
        crop = parse_size(args.crop) if args.crop else (shape[2], shape[3])
        mean = tuple(float(v) for v in args.mean.split(",")) if args.mean else ()
        transform = Transform(crop=crop, resize=parse_size(args.resize) if args.resize else None,
                              resize_short=args.resize_short, mean=mean, scale=args.scale, train=False)
        source = ClassificationSource(args.data, args.root, channels=shape[1])
        result = evaluate_classifier(net, source, transform, args.batch, limit=args.limit)
    except (DataError, CaffeUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"top-1 {100 * result.top1:.2f} %   top-5 {100 * result.top5:.2f} %   ({result.count} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
