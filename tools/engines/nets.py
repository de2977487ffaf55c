"""What every engine needs from a net before it runs: the inference view (the one phase
filter), its single input, the one set of random weights, a random input, and the Interp
sizes made explicit for engines that mis-size Caffe's factor form.

Shapes come only from prototxt_gen.shapes (through tools.export.caffe_net.build_net) and weights only
from tools.export.caffemodel.random_weights, so every engine runs the same net on the same numbers.
"""
from __future__ import annotations

import numpy as np

from dfseg.base.memory import available_bytes, fits
from prototxt_gen import caffe_pb2
from prototxt_gen.netprep import AnalysisError, phase_view, upgrade_net_input
from tools.export.caffe_net import CaffeNet, CaffeNetError, build_net
from tools.export.caffemodel import Weights, caffemodel_bytes, random_weights

from .base import EngineError

__all__ = ["PreparedNet", "prepare_net", "random_input", "explicit_interp_sizes",
           "caffe_memory_bytes", "check_memory", "scaled_difference"]

class PreparedNet:
    """A net as the engines take it: its TEST-phase NetParameter (legacy inputs as an Input
    layer) and one input; its interpretation (blob and parameter shapes) and its weights are
    worked out when an engine first needs them (``caffe time`` needs neither)."""

    def __init__(self, param: caffe_pb2.NetParameter, weights: Weights | None = None, seed: int = 0):
        try:
            self.param = phase_view(upgrade_net_input(param), "TEST")
        except AnalysisError as err:
            raise EngineError(f"net {param.name!r}: {err}") from None
        inputs = [(top, tuple(layer.input_param.shape[min(i, len(layer.input_param.shape) - 1)].dim))
                  for layer in self.param.layer if layer.type == "Input" and layer.input_param.shape
                  for i, top in enumerate(layer.top)]
        if len(inputs) != 1:
            raise EngineError(f"net {param.name!r}: the engines time nets with one shaped Input, this "
                              f"one has {[name for name, _ in inputs] or 'none'}")
        (self.input_name, self.input_shape), = inputs
        self.seed, self._weights, self._caffe_net = seed, weights, None
        self.input = random_input(self.input_shape, seed)

    @property
    def caffe_net(self) -> CaffeNet:
        if self._caffe_net is None:
            try:
                self._caffe_net = build_net(self.param)
            except CaffeNetError as err:
                raise EngineError(f"net {self.name!r}: {err}") from None
        return self._caffe_net

    @property
    def weights(self) -> Weights:
        if self._weights is None:
            self._weights = random_weights(self.caffe_net, self.seed)
        return self._weights

    @property
    def name(self) -> str:
        return self.param.name or "net"

    def caffemodel(self) -> bytes:
        """The weights as a caffemodel (what OpenCV and Caffe's tools read)."""
        types = {layer.name: layer.type for layer in self.caffe_net.layers}
        return caffemodel_bytes(self.weights, self.name, types)


def prepare_net(net, weights: Weights | None = None, seed: int = 0) -> PreparedNet:
    return net if isinstance(net, PreparedNet) else PreparedNet(net, weights, seed)


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def explicit_interp_sizes(net: PreparedNet) -> caffe_pb2.NetParameter:
    """The net with every Interp given by shrink/zoom factors or pads rewritten to the
    height/width Caffe computes (OpenCV's Caffe importer mis-sizes shrink_factor)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net.param)
    for layer in out.layer:
        p = layer.interp_param
        if layer.type == "Interp" and (p.HasField("shrink_factor") or p.HasField("zoom_factor")
                                       or p.pad_beg or p.pad_end):
            h, w = net.caffe_net.blob_shapes[layer.top[0]][2:]
            p.Clear()
            p.height, p.width = h, w
    return out


def caffe_memory_bytes(net: PreparedNet) -> int | None:
    """What Caffe allocates to run `net` forward: every blob's data (in-place tops share one),
    the parameters, and each convolution's own im2col buffer (Caffe 1.0 keeps one per layer,
    which is what makes SegNet at 1920x1080 need tens of GB).  None when the net cannot be
    interpreted here (the engine then just tries)."""
    try:
        cnet = net.caffe_net
    except EngineError:
        return None
    floats = sum(int(np.prod(s)) for s in cnet.blob_shapes.values())
    floats += sum(int(np.prod(s)) for shapes in cnet.param_shapes.values() for s in shapes)
    for layer in cnet.layers:
        if layer.type in ("Convolution", "Deconvolution") and cnet.param_shapes.get(layer.name):
            weight = cnet.param_shapes[layer.name][0]          # (out, in/group, kh, kw)
            spatial = cnet.blob_shapes[layer.top[0]][2:] if layer.type == "Convolution" \
                else cnet.bottom_shapes[layer.name][0][2:]
            kernel = int(np.prod(weight[1:])) if layer.type == "Convolution" else \
                int(weight[1] * np.prod(weight[2:])) * max(1, layer.convolution_param.group)
            if int(np.prod(weight[2:])) > 1 or any(s != 1 for s in layer.convolution_param.stride):
                floats += kernel * int(np.prod(spatial))
    return 4 * floats


def check_memory(net: PreparedNet, engine: str) -> None:
    """Refuse, in one line, a net that would not fit: the kernel's OOM killer would otherwise
    end the engine (or another process) with SIGKILL."""
    need, have = caffe_memory_bytes(net), available_bytes()
    if not fits(need, have):
        raise EngineError(f"{engine}: net {net.name!r} needs about {need / 2**30:.1f} GiB "
                          f"(blobs, weights, im2col buffers), {have / 2**30:.1f} GiB available")


def scaled_difference(got: dict, want: dict, reshape: bool = False) -> float:
    """The largest |got - want| over every output of `want`, each scaled by that output's
    largest magnitude: how two engines' outputs of one net agree.  A missing output, or one
    of another shape (of another size, with `reshape`), is an EngineError naming it."""
    worst = 0.0
    for name, ref in want.items():
        value = got.get(name)
        if value is not None and reshape and np.size(value) == np.size(ref):
            value = np.reshape(value, ref.shape)
        if value is None or np.shape(value) != np.shape(ref):
            raise EngineError(f"output {name!r}: shape {None if value is None else np.shape(value)} "
                              f"vs the reference's {np.shape(ref)}")
        diff = np.abs(np.asarray(value, np.float64) - ref).max()
        worst = max(worst, float(diff / max(float(np.abs(ref).max()), 1e-6)))
    return worst
