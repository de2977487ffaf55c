"""The ONNX graph under construction for one Caffe net: nodes, initializers, SSA names for
Caffe's in-place blobs, and a record of which ONNX value holds each Caffe layer's output (what
`tools.export.onnx_check` compares with pycaffe, layer by layer)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from onnx import helper, numpy_helper

from tools.export.caffe_net import CaffeNet, UnsupportedLayerError, Write  # noqa: F401 (re-exported)

OPSET = 17
IR_VERSION = 8  # the IR of opset 17; runtimes reject models stamped with a newer IR


@dataclass(frozen=True)
class PoolIndices:
    """ONNX MaxPool indices behind a Caffe pooling mask: flat over the whole (N, C, H, W)
    tensor MaxPool read, which is the pooling input unless `cropped` (sliced first)."""
    value: str
    input_hw: tuple[int, int]
    cropped: bool


@dataclass
class Graph:
    """Nodes and initializers under construction, with SSA names for Caffe's in-place blobs."""
    net: CaffeNet
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)  # Caffe blob -> latest ONNX value
    writes_left: Counter = field(default_factory=Counter)
    writes: list[Write] = field(default_factory=list)
    pool_indices: dict[str, PoolIndices] = field(default_factory=dict)  # mask value -> indices
    #: For the check only: pooling masks are still computed (and compared), but what reads
    #: them reads a graph input fed with Caffe's mask instead (blob -> (input name, shape)).
    masks_from_caffe: bool = False
    mask_inputs: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    counter: int = 0

    def const(self, hint: str, value, dtype=np.float32) -> str:
        self.counter += 1
        name = f"{hint}#c{self.counter}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def temp(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}#t{self.counter}"

    def node(self, op: str, inputs, outputs, name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))

    def bottom(self, blob: str) -> str:
        return self.current[blob]

    def top(self, blob: str, layer_name: str) -> str:
        """The ONNX name for this write of `blob`: the blob's own name for its last write."""
        self.writes_left[blob] -= 1
        last = self.writes_left[blob] == 0 and blob not in self.net.inputs  # inputs keep theirs
        name = blob if last else f"{blob}@{layer_name}"
        self.current[blob] = name
        self.writes.append(Write(layer_name, blob, name))
        return name


def slice_hw(g: Graph, x: str, hint: str, ends: tuple[int, int], starts=(0, 0)) -> str:
    """x[:, :, starts[0]:ends[0], starts[1]:ends[1]]."""
    out = g.temp(hint)
    g.node("Slice", [x, g.const(hint + "/starts", list(starts), np.int64),
                     g.const(hint + "/ends", list(ends), np.int64),
                     g.const(hint + "/axes", [2, 3], np.int64)], [out], hint)
    return out


def broadcast(values: np.ndarray, first_axis: int, ndim: int) -> np.ndarray:
    """Reshape a factor covering axes [first_axis, first_axis + values.ndim) to broadcast."""
    trailing = ndim - first_axis - values.ndim
    return values.reshape(values.shape + (1,) * trailing)


def per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector (any shape holding C values) shaped (C, 1, ...) for axis 1."""
    return np.asarray(values, np.float32).reshape((-1,) + (1,) * (ndim - 2))
