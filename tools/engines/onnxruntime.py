"""ONNX Runtime (CPU execution provider) on the net exported by tools.export.onnx_convert."""
from __future__ import annotations

import numpy as np

from tools.export.caffe_net import CaffeNetError
from tools.export.onnx_convert import convert

from .base import Engine, EngineError, PreparedRun
from .nets import prepare_net

__all__ = ["OnnxRuntimeEngine", "export_onnx"]


def _ort():
    try:
        import onnxruntime
    except ImportError as err:
        raise EngineError(f"engine onnxruntime: onnxruntime is not installed ({err})") from None
    return onnxruntime


def export_onnx(net):
    """The ONNX model of a prepared net, with the net's own (shared) weights."""
    try:
        return convert(net.caffe_net, net.weights)
    except (CaffeNetError, ValueError) as err:
        raise EngineError(f"ONNX export of {net.name!r}: {err}") from None


class _OrtRun(PreparedRun):
    def __init__(self, ort, net, threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(export_onnx(net).SerializeToString(), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:   # onnxruntime's own exception types are not public API
            raise EngineError(f"ONNX Runtime cannot load {net.name!r}: {err}") from None
        self.feeds = {self.session.get_inputs()[0].name: net.input}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self) -> None:
        self.session.run(None, self.feeds)

    def outputs(self) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, self.feeds)))


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def version(self) -> str:
        return f"onnxruntime {_ort().__version__}"

    def prepare(self, net) -> PreparedRun:
        return _OrtRun(_ort(), prepare_net(net), self.threads)
