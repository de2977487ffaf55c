"""pycaffe Python data layers with the authors' "random scaling and stretching".

Used in prototxts as::

    layer { name: "data" type: "Python" top: "data" top: "label"
            python_param { module: "solvers.data_layers" layer: "SegmentationDataLayer"
                           param_str: '{"source": "train.txt", "batch_size": 8, "crop": [1024, 1024],
                                        "rand_h": [512, 2048], "rand_w": [1024, 4096], ...}' } }

``param_str`` keys: :class:`solvers.data_sources.DataParams`.  Augmentation:
:mod:`solvers.augment`.  Why a Python layer rather than C++ in our Caffe's ImageData:
BVLC's ImageData reads one integer label per image, so segmentation needs a new layer
anyway; a Python layer keeps the augmentation in one tested NumPy/OpenCV module shared by
classification and segmentation, needs no rebuild of Caffe, and its cost (decode + resize
per image) is small beside a CPU forward/backward pass.  The ``img_rand_*`` / ``crop_h`` /
``crop_w`` fields of an ImageData layer map one-to-one onto its parameters
(:func:`solvers.net_data.python_data_layer`).

A batch is assembled in ``reshape`` (Caffe calls it before every ``forward``) because a
layer without a crop or fixed resize has the size of its images.
"""
from __future__ import annotations

import numpy as np

from .augment import apply
from tools.runtime.caffe import load_caffe
from .data_sources import ClassificationSource, DataParams, SegmentationSource

caffe = load_caffe()


_LIVE: list = []


def live_layers() -> list["_BatchDataLayer"]:
    """The data layers alive in this process (the runner seeks them after a resume)."""
    return list(_LIVE)


class _BatchDataLayer(caffe.Layer):
    """Sample ``j`` of the layer's stream is a pure function of (seed, j): epoch
    ``j // n`` has its own permutation and every sample its own augmentation RNG, so a
    resumed run that seeks to the same position sees exactly the same batches."""

    def setup(self, bottom, top):
        self.params = DataParams.from_json(self.param_str)
        self.train = self.phase == caffe.TRAIN
        self.transform = self.params.transform(self.train)
        self.source = self.make_source()
        self.shuffle = self.train if self.params.shuffle is None else self.params.shuffle
        self.position = 0          # samples consumed so far
        self._perm_epoch, self._perm = -1, None
        # Caffe calls reshape once right after setup, only to learn the top shapes: that
        # batch must not advance the stream (a resumed net would otherwise be one batch off)
        self._shape_only = True
        if len(top) != 2:
            raise ValueError(f"{type(self).__name__} has two tops (data, label), got {len(top)}")
        _LIVE.append(self)

    def seek(self, position: int) -> None:
        self.position = int(position)

    def _index(self, j: int) -> int:
        epoch, k = divmod(j, len(self.source))
        if not self.shuffle:
            return k
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.params.seed, epoch]).permutation(len(self.source))
            self._perm_epoch = epoch
        return int(self._perm[k])

    def reshape(self, bottom, top):
        items = []
        start = self.position
        for j in range(start, start + self.params.batch_size):
            rng = np.random.default_rng([self.params.seed, 1, j])
            items.append(self.load(self._index(j), rng))
        shapes = {item[0].shape for item in items}
        if len(shapes) != 1:
            raise ValueError(f"{self.params.source}: images of different sizes {sorted(shapes)} in one batch; "
                             "set crop or resize")
        if self._shape_only:
            self._shape_only = False
        else:
            self.position = start + self.params.batch_size
        self.data = np.stack([item[0] for item in items])
        self.label = self.stack_labels([item[1] for item in items])
        top[0].reshape(*self.data.shape)
        top[1].reshape(*self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.data
        top[1].data[...] = self.label

    def backward(self, top, propagate_down, bottom):
        pass


class ClassificationDataLayer(_BatchDataLayer):
    """(data N×C×H×W, label N) from an LMDB of Datums or a ``path label`` list."""

    def make_source(self):
        return ClassificationSource(self.params.source, self.params.root, self.params.num_classes,
                                    self.params.channels)

    def load(self, i, rng):
        image, label = self.source.read(i)
        blob, _ = apply(self.transform, rng, image)
        return blob, label

    def stack_labels(self, labels):
        return np.asarray(labels, np.float32)


class SegmentationDataLayer(_BatchDataLayer):
    """(data N×3×H×W, label N×1×H×W) from ``image label`` pairs; labels in train ids."""

    def make_source(self):
        return SegmentationSource(self.params.source, self.params.label_source, self.params.num_classes,
                                  self.params.ignore_label)

    def load(self, i, rng):
        image, label = self.source.read(i)
        return apply(self.transform, rng, image, label)

    def stack_labels(self, labels):
        return np.stack(labels)[:, None]
