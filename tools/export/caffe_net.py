"""A Caffe network definition as Caffe's TEST-phase net sees it: which layers run, which blobs
are inputs, every blob's shape and every layer's parameter-blob shapes — computed with Caffe's
own size rules (ceil-mode pooling with its last-window clip, PSPNet's Interp, deconvolution,
the forks' BN and Upsample),
which prototxt_gen.shapes implements.

Exporters (`tools.export.onnx_convert`, `tools.export.torch_convert`) and weight files
(`tools.export.caffemodel`) build on this; it needs no Caffe build.  Which layers are data,
evaluation or loss layers and the shapes of their parameter blobs come from the layer catalogue
(prototxt_gen.shapes.catalogue).  Shapes are tuples (N, C, H, W) for images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prototxt_gen import caffe_pb2, netio, netprep, shapes
from prototxt_gen.netio import NetDefinitionError
from prototxt_gen.shapes import is_data_layer, is_scoring_layer

Shape = tuple[int, ...]

#: The layer types this module interprets (an exporter may know fewer: check_supported).
INTERPRETED_TYPES = frozenset({
    "Convolution", "Deconvolution", "BatchNorm", "Scale", "InnerProduct", "PReLU", "BN",
    "Pooling", "Interp", "ReLU", "Dropout", "Softmax", "Sigmoid", "TanH", "Split", "Eltwise",
    "Concat", "Flatten", "ArgMax", "LRN", "Crop", "Slice", "Power", "Reshape",
    "ShuffleChannel", "Upsample",
})


class CaffeNetError(NetDefinitionError):
    """A network definition this module cannot interpret; the message names the layer."""


class UnsupportedLayerError(CaffeNetError):
    """The net has layers an exporter (ONNX, PyTorch) cannot express; the message names them."""


# --------------------------------------------------------------------------- loading


def load_net_param(net: caffe_pb2.NetParameter | str | Path) -> caffe_pb2.NetParameter:
    """A NetParameter from a message (returned as is) or a prototxt path, read by the one
    reader, `prototxt_gen.netio.read_net` (its NetReadError says ``file:line: message``)."""
    if isinstance(net, caffe_pb2.NetParameter):
        return net
    return netio.read_net(net)


def layer_runs_in(layer: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST) -> bool:
    """Caffe's include/exclude filtering (Net::FilterNet) for one layer, in a state with the
    given phase, level 0 and no stages."""
    try:
        return netprep.layer_included(layer, caffe_pb2.NetState(phase=phase))
    except netprep.AnalysisError as err:
        raise CaffeNetError(str(err)) from None


# --------------------------------------------------------------------------- geometry
# Caffe's size rules live in prototxt_gen.shapes (checked top for top against Caffe's logs);
# here they are read per layer, with errors naming the layer, plus what an exporter needs
# beyond the output size (group, bias, Interp's crop).


def _shape_rule(layer: caffe_pb2.LayerParameter, rule, *args):
    try:
        return rule(*args)
    except shapes.ShapeError as err:
        raise CaffeNetError(f"layer {layer.name!r} ({layer.type}): {err}") from None


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int]
    group: int
    num_output: int
    bias_term: bool


def conv_geometry(layer: caffe_pb2.LayerParameter) -> ConvGeometry:
    """A 2-D (N, C, H, W) Convolution/Deconvolution's window, groups and bias."""
    p = layer.convolution_param
    if p.axis != 1:
        raise CaffeNetError(f"layer {layer.name!r}: convolution axis {p.axis} is not supported")
    g = _shape_rule(layer, shapes.conv_geometry, p, 2)
    return ConvGeometry(g.kernel, g.stride, g.pad, g.dilation, int(p.group), int(p.num_output),
                        bool(p.bias_term))


PoolGeometry = shapes.PoolGeometry


def pool_geometry(layer: caffe_pb2.LayerParameter, in_hw: tuple[int, int]) -> PoolGeometry:
    """Caffe's PoolingLayer::Reshape: ceil (or floor) rounding, then the padded last window is
    dropped when it would start inside the padding."""
    geo = _shape_rule(layer, shapes.pool_geometry, layer.pooling_param, tuple(in_hw))
    for size, k, s, q, n in zip(in_hw, geo.kernel, geo.stride, geo.pad, geo.output):
        # Caffe runs a last window that starts past the input (unpadded pooling with a stride
        # larger than the kernel) and writes -FLT_MAX / 0 there; exporters cannot match that.
        if (n - 1) * s - q >= size:
            raise CaffeNetError(f"layer {layer.name!r}: pooling window {k}/stride {s} does not "
                                f"fit input size {size}")
    return geo


@dataclass(frozen=True)
class InterpGeometry:
    crop_begin: int  # rows/columns dropped at the start (= -pad_beg)
    crop_end: int  # rows/columns dropped at the end (= -pad_end)
    output: tuple[int, int]


def interp_geometry(layer: caffe_pb2.LayerParameter, in_hw: tuple[int, int]) -> InterpGeometry:
    """PSPNet's InterpLayer::Reshape (the DF-Seg / ICNet fork): shrink, zoom, both, or fixed
    height/width, applied to the input cropped by -pad_beg / -pad_end."""
    p = layer.interp_param
    output = _shape_rule(layer, shapes.interp_output_hw, p, tuple(in_hw))
    return InterpGeometry(-p.pad_beg, -p.pad_end, (int(output[0]), int(output[1])))


def _canonical_axis(axis: int, ndim: int, layer: caffe_pb2.LayerParameter) -> int:
    return _shape_rule(layer, shapes.canonical_axis, axis, ndim)


def argmax_axis(layer: caffe_pb2.LayerParameter, ndim: int) -> int | None:
    p = layer.argmax_param
    return _canonical_axis(p.axis, ndim, layer) if p.HasField("axis") else None


def concat_axis(layer: caffe_pb2.LayerParameter, ndim: int) -> int:
    return _shape_rule(layer, shapes.legacy_axis, layer.concat_param, "concat_dim", ndim)


def scale_span(layer: caffe_pb2.LayerParameter, shape: Shape) -> tuple[int, int]:
    """(first axis, number of axes) the Scale layer's factor covers."""
    p = layer.scale_param
    axis = _canonical_axis(p.axis, len(shape), layer)
    num_axes = len(shape) - axis if p.num_axes == -1 else p.num_axes
    return axis, num_axes


# --------------------------------------------------------------------------- shapes


def _check_conv(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> None:
    """The exporters' convolutions are 2-D, on axis 1."""
    if len(bottoms[0]) != 4:
        raise CaffeNetError(f"layer {layer.name!r} ({layer.type}) needs a 4-D bottom, "
                            f"got {bottoms[0]}")
    conv_geometry(layer)


def layer_shapes(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]
                 ) -> tuple[list[Shape], list[Shape]]:
    """(top shapes, parameter-blob shapes) of one layer given its bottom shapes: the tops from
    prototxt_gen.shapes' rules, the parameters from its layer catalogue."""
    if layer.type not in INTERPRETED_TYPES:
        raise CaffeNetError(f"layer {layer.name!r}: unsupported layer type {layer.type!r}")
    bottoms = [tuple(b) for b in bottoms]
    cost = _shape_rule(layer, shapes.RULES[layer.type], layer, bottoms)
    if layer.type in ("Convolution", "Deconvolution"):
        _check_conv(layer, bottoms)
    return cost.tops, _shape_rule(layer, shapes.param_shapes, layer, bottoms)


# --------------------------------------------------------------------------- the net


@dataclass(frozen=True)
class Write:
    """One layer writing one Caffe blob, and the exporter's name for the value that holds
    what Caffe's blob holds right after that layer ran (what a check compares)."""
    layer: str
    blob: str
    value: str


@dataclass
class CaffeNet:
    """The inference part of a Caffe net in TEST phase."""
    name: str
    layers: list[caffe_pb2.LayerParameter]
    inputs: dict[str, Shape]
    blob_shapes: dict[str, Shape] = field(default_factory=dict)
    param_shapes: dict[str, list[Shape]] = field(default_factory=dict)
    bottom_shapes: dict[str, list[Shape]] = field(default_factory=dict)  # per layer
    dropped: list[str] = field(default_factory=list)  # layer names left out, with reasons

    @property
    def outputs(self) -> list[str]:
        """Blobs no later layer reads: Caffe's net outputs (Net::Init's available blobs)."""
        available = list(self.inputs)
        for layer in self.layers:
            available = [b for b in available if b not in layer.bottom]
            available.extend(t for t in layer.top if t not in available)
        return available


def _upgraded_param(net: caffe_pb2.NetParameter | str | Path) -> caffe_pb2.NetParameter:
    """The net with its old-style input fields made an Input layer (V1 nets refused)."""
    param = load_net_param(net)
    if param.layers:
        raise CaffeNetError(f"net {param.name!r}: V1 'layers' definitions are not supported; "
                            f"upgrade with Caffe's upgrade_net_proto_text")
    try:
        return netprep.upgrade_net_input(param)  # input:/input_dim: become an Input layer
    except netprep.AnalysisError as err:
        raise CaffeNetError(f"net {param.name!r}: {err}") from None


def _declared_inputs(layer: caffe_pb2.LayerParameter) -> dict[str, Shape]:
    """An Input layer's tops and their shapes (one shape may serve all tops)."""
    declared = list(layer.input_param.shape)
    inputs: dict[str, Shape] = {}
    for i, top in enumerate(layer.top):
        if not declared:
            raise CaffeNetError(f"layer {layer.name!r}: Input layer without shape")
        inputs[top] = tuple(int(d) for d in declared[min(i, len(declared) - 1)].dim)
    return inputs


def _deployed_layers(param: caffe_pb2.NetParameter, input_shape: Shape | None):
    """(inputs, layers, dropped) of the TEST-phase net: Input and data layers become inputs
    (a data layer's label tops are dropped), evaluation layers are dropped."""
    inputs: dict[str, Shape] = {}
    layers: list[caffe_pb2.LayerParameter] = []
    dropped: list[str] = []
    unavailable: set[str] = set()
    for layer in param.layer:
        if not layer_runs_in(layer):
            continue
        if layer.type == "Input":
            inputs.update(_declared_inputs(layer))
            continue
        if is_data_layer(layer):
            if input_shape is None:
                raise CaffeNetError(f"layer {layer.name!r}: data layer {layer.type} has no fixed "
                                    f"shape; give the input shape (--input NxCxHxW)")
            inputs[layer.top[0]] = tuple(input_shape)
            unavailable.update(layer.top[1:])
            dropped.append(f"{layer.name} ({layer.type}: replaced by input {layer.top[0]!r})")
            continue
        if is_scoring_layer(layer):
            dropped.append(f"{layer.name} ({layer.type}: evaluation only)")
            unavailable.update(layer.top)
            continue
        missing = [b for b in layer.bottom if b in unavailable]
        if missing:
            raise CaffeNetError(f"layer {layer.name!r} ({layer.type}) reads {missing}, which a "
                                f"deployed net does not have")
        layers.append(layer)
    return inputs, layers, dropped


def _checked_inputs(param: caffe_pb2.NetParameter, inputs: dict[str, Shape],
                    input_shape: Shape | None) -> dict[str, Shape]:
    """The net's inputs, the single one reshaped to `input_shape` when given."""
    if not inputs:
        raise CaffeNetError(f"net {param.name!r}: no input (Input layer, input_dim or data layer)")
    if input_shape is not None:
        if len(inputs) != 1:
            raise CaffeNetError(f"net {param.name!r}: --input given but the net has inputs "
                                f"{sorted(inputs)}")
        inputs = {next(iter(inputs)): tuple(int(d) for d in input_shape)}
    for name, shape in inputs.items():
        if not shape or min(shape) < 1:
            raise CaffeNetError(f"net {param.name!r}: input {name!r} has shape {list(shape)}; "
                                "every dimension must be at least 1")
    return inputs


def _infer_shapes(result: CaffeNet) -> None:
    """Every layer's bottom, top and parameter-blob shapes, in order from the inputs."""
    blob_shapes = dict(result.inputs)
    for layer in result.layers:
        for b in layer.bottom:
            if b not in blob_shapes:
                raise CaffeNetError(f"layer {layer.name!r} reads blob {b!r}, which no earlier "
                                    f"layer produces")
        if len(layer.top) < 1:
            raise CaffeNetError(f"layer {layer.name!r} has no top")
        bottoms = [blob_shapes[b] for b in layer.bottom]
        if not bottoms:
            raise CaffeNetError(f"layer {layer.name!r} ({layer.type}) has no bottom")
        tops, params = layer_shapes(layer, bottoms)
        result.bottom_shapes[layer.name] = bottoms
        for top, shape in zip(layer.top, tops):
            blob_shapes[top] = shape
        if layer.name in result.param_shapes:
            raise CaffeNetError(f"two layers are named {layer.name!r}")
        result.param_shapes[layer.name] = params
    result.blob_shapes = blob_shapes


def check_supported(param: caffe_pb2.NetParameter, supported, target: str) -> None:
    """Fail naming every TEST-phase layer whose type `target` (an exporter) cannot express,
    before anything else is computed; data, evaluation and loss layers are not exported."""
    bad = [f"{layer.name} ({layer.type})" for layer in param.layer
           if layer_runs_in(layer) and layer.type not in supported and not is_data_layer(layer)
           and not is_scoring_layer(layer)]
    if bad:
        raise UnsupportedLayerError(f"unsupported layer types for {target}: {', '.join(bad)}; "
                                    f"supported: {', '.join(sorted(supported))}")


def build_net(net: caffe_pb2.NetParameter | str | Path,
              input_shape: Shape | None = None) -> CaffeNet:
    """Interpret a prototxt (path or message) in TEST phase.

    `input_shape` (N, C, H, W) replaces the shape of the net's single input — and gives one to
    a data layer (ImageData, Data, ...), whose first top becomes the input and whose other tops
    (labels) are dropped together with the evaluation layers that read them."""
    param = _upgraded_param(net)
    inputs, layers, dropped = _deployed_layers(param, input_shape)
    inputs = _checked_inputs(param, inputs, input_shape)
    result = CaffeNet(param.name or "net", layers, inputs, dropped=dropped)
    _infer_shapes(result)
    return result
