"""OpenCV's DNN module reading the same prototxt and weights Caffe runs.

Two rewrites make OpenCV compute what Caffe computes (`opencv_view`): OpenCV's Caffe importer
mis-sizes Interp given by shrink_factor (4.x), so every Interp given by factors gets the
explicit height/width Caffe computes; and OpenCV refuses a pooling window larger than its
input, which Caffe clips to the input (DF-Seg's pyramid pooling keeps the 1024x2048 windows at
every size), so such a window becomes the input's extent -- the same single output.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from prototxt_gen import caffe_pb2

from .base import Engine, EngineError, PreparedRun
from .nets import explicit_interp_sizes, prepare_net

__all__ = ["OpenCVEngine", "opencv_view"]



def opencv_view(net) -> caffe_pb2.NetParameter:
    """The net as OpenCV should read it (see the module docstring)."""
    out = explicit_interp_sizes(net)
    shapes = net.caffe_net.bottom_shapes
    for layer in out.layer:
        p = layer.pooling_param
        if layer.type != "Pooling" or p.global_pooling or layer.name not in shapes:
            continue
        h, w = shapes[layer.name][0][2:]
        kh, kw = (p.kernel_h, p.kernel_w) if p.kernel_h else (p.kernel_size, p.kernel_size)
        ph, pw = (p.pad_h, p.pad_w) if p.pad_h or p.pad_w else (p.pad, p.pad)
        if (kh > h and ph == 0) or (kw > w and pw == 0):
            p.ClearField("kernel_size")
            p.kernel_h, p.kernel_w = (min(kh, h) if ph == 0 else kh), (min(kw, w) if pw == 0 else kw)
    return out


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
            proto.write_text(text_format.MessageToString(opencv_view(net)))
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
