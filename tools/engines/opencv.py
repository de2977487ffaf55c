"""OpenCV's DNN module reading the same prototxt and weights Caffe runs.

OpenCV's Caffe importer mis-sizes Interp given by shrink_factor (4.x), so every Interp given
by factors is rewritten to the explicit height/width Caffe computes before OpenCV reads it."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from .base import Engine, EngineError, PreparedRun
from .nets import explicit_interp_sizes, prepare_net

__all__ = ["OpenCVEngine"]


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise EngineError(f"engine opencv: OpenCV is not installed ({err})") from None
    return cv2


def _last_line(err) -> str:
    """OpenCV's own line ("... error: (-2:...) what") out of its multi-line message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or [type(err).__name__])[0]


class _OpenCVRun(PreparedRun):
    def __init__(self, cv2, net, threads: int):
        self.cv2 = cv2
        cv2.setNumThreads(threads)
        with tempfile.TemporaryDirectory(prefix="dfseg_opencv_") as tmp:
            proto, model = Path(tmp) / "net.prototxt", Path(tmp) / "net.caffemodel"
            proto.write_text(text_format.MessageToString(explicit_interp_sizes(net)))
            model.write_bytes(net.caffemodel())
            try:
                self.dnn = cv2.dnn.readNetFromCaffe(str(proto), str(model))
            except cv2.error as err:
                raise EngineError(f"OpenCV cannot load net {net.name!r}: {_last_line(err)}") from None
        self.dnn.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.x, self.name = net.input, net.name
        # OpenCV names outputs by the layer that produced them; Caffe by the blob
        producer = {top: layer.name for layer in net.caffe_net.layers for top in layer.top}
        self.blob_of_layer = {producer[b]: b for b in net.caffe_net.outputs if b in producer}

    def _forward(self, names=None):
        try:
            self.dnn.setInput(self.x)
            return self.dnn.forward(names) if names else self.dnn.forward()
        except self.cv2.error as err:
            raise EngineError(f"OpenCV cannot run net {self.name!r}: {_last_line(err)}") from None

    def __call__(self) -> None:
        self._forward()

    def outputs(self) -> dict[str, np.ndarray]:
        names = list(self.dnn.getUnconnectedOutLayersNames())
        arrays = self._forward(names)
        return {self.blob_of_layer.get(n, n): np.array(a) for n, a in zip(names, arrays)}


class OpenCVEngine(Engine):
    name = "opencv"

    def version(self) -> str:
        return f"opencv {_cv2().__version__}"

    def prepare(self, net) -> PreparedRun:
        return _OpenCVRun(_cv2(), prepare_net(net), self.threads)
