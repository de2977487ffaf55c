"""Classification accuracy: top-1 / top-5 with a single centre crop.

Every image is resized (shorter side to ``resize_short``, as for ImageNet's 256 -> 224, or to
a fixed ``HxW``), centre-cropped to the net's input size, mean-subtracted and scaled, then
run through a deploy net (Input layer); the last output (``prob`` or the classifier) ranks
the classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from tools.runtime.caffe import load_caffe

from .augment import Transform, apply
from .data_sources import ClassificationSource

__all__ = ["TopK", "evaluate_classifier", "evaluate_deploy", "topk_counts"]


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


def evaluate_deploy(net: str, weights: str, data: str, *, root: str | None = None,
                    crop: tuple[int, int] | None = None, resize: tuple[int, int] | None = None,
                    resize_short: int | None = None, mean: tuple[float, ...] = (), scale: float = 1.0,
                    batch: int = 50, limit: int | None = None, progress: bool = True) -> TopK:
    """Top-1/top-5 of a deploy prototxt with its weights over an LMDB or ``path label`` list;
    the crop defaults to the net's input size."""
    caffe = load_caffe()
    cnet = caffe.Net(net, caffe.TEST, weights=weights)
    shape = cnet.blobs["data"].data.shape
    transform = Transform(crop=crop or (shape[2], shape[3]), resize=resize, resize_short=resize_short, mean=mean,
                          scale=scale, train=False)
    source = ClassificationSource(data, root, channels=shape[1])
    return evaluate_classifier(cnet, source, transform, batch, limit=limit, progress=progress)
