"""A Caffe network definition as Caffe's TEST-phase net sees it: which layers run, which blobs
are inputs, every blob's shape and every layer's parameter-blob shapes — computed with Caffe's
own size rules (ceil-mode pooling with its last-window clip, PSPNet's Interp, deconvolution).

Exporters (`tools.to_onnx`) and weight files (`tools.caffemodel`) build on this; it needs no
Caffe build.  Shapes are tuples (N, C, H, W) for images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

from prototxt_gen import caffe_pb2

Shape = tuple[int, ...]

#: Layer types that read a dataset; the exporter replaces their first top by a graph input.
DATA_LAYER_TYPES = frozenset({
    "Data", "ImageData", "WindowData", "HDF5Data", "MemoryData", "DummyData",
    "AnnotatedData", "ImageSegData", "DenseImageData", "Python",
})
#: Layers that only score against labels: dropped from an inference graph.
EVALUATION_LAYER_TYPES = frozenset({"Accuracy", "Silence"})


def is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """A layer that reads a dataset (a Python layer counts only when it has no bottoms)."""
    return layer.type in DATA_LAYER_TYPES and not (layer.type == "Python" and layer.bottom)


class CaffeNetError(ValueError):
    """A network definition this module cannot interpret; the message names the layer."""


# --------------------------------------------------------------------------- loading


def load_net_param(net: caffe_pb2.NetParameter | str | Path) -> caffe_pb2.NetParameter:
    """A NetParameter from a message (returned as is) or a prototxt path."""
    if isinstance(net, caffe_pb2.NetParameter):
        return net
    path = Path(net)
    try:
        text = path.read_text()
    except OSError as err:
        raise CaffeNetError(f"{path}: cannot read network definition ({err.strerror})") from None
    param = caffe_pb2.NetParameter()
    try:
        text_format.Merge(text, param)
    except text_format.ParseError as err:
        raise CaffeNetError(f"{path}: not a Caffe prototxt: {err}") from None
    return param


def _rule_matches(rule: caffe_pb2.NetStateRule, phase: int) -> bool:
    # Caffe's Net::StateMeetsRule for a state with the given phase, level 0 and no stages.
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and 0 < rule.min_level:
        return False
    if rule.HasField("max_level") and 0 > rule.max_level:
        return False
    return not rule.stage  # a rule that requires stages never matches the stage-less state


def layer_runs_in(layer: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST) -> bool:
    """Caffe's include/exclude filtering (Net::FilterNet) for one layer."""
    if layer.include:
        return any(_rule_matches(rule, phase) for rule in layer.include)
    return not any(_rule_matches(rule, phase) for rule in layer.exclude)


# --------------------------------------------------------------------------- geometry


def _pick(values, specific_h, specific_w, has_h, has_w, default, what, layer_name):
    if has_h or has_w:
        if not (has_h and has_w):
            raise CaffeNetError(f"layer {layer_name!r}: {what}_h and {what}_w must be given together")
        return int(specific_h), int(specific_w)
    values = list(values)
    if not values:
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise CaffeNetError(f"layer {layer_name!r}: only 2-D {what} is supported, got {values}")


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
    p = layer.convolution_param
    kernel = _pick(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h"),
                   p.HasField("kernel_w"), None, "kernel", layer.name)
    if kernel[0] is None:
        raise CaffeNetError(f"layer {layer.name!r}: convolution without kernel_size")
    stride = _pick(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"),
                   p.HasField("stride_w"), 1, "stride", layer.name)
    pad = _pick(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), p.HasField("pad_w"), 0, "pad",
                layer.name)
    dilation = _pick(p.dilation, 0, 0, False, False, 1, "dilation", layer.name)
    if p.axis != 1:
        raise CaffeNetError(f"layer {layer.name!r}: convolution axis {p.axis} is not supported")
    return ConvGeometry(kernel, stride, pad, dilation, int(p.group), int(p.num_output),
                        bool(p.bias_term))


@dataclass(frozen=True)
class PoolGeometry:
    method: int  # caffe_pb2.PoolingParameter.MAX / AVE
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    global_pooling: bool
    output: tuple[int, int]


def pool_geometry(layer: caffe_pb2.LayerParameter, in_hw: tuple[int, int]) -> PoolGeometry:
    """Caffe's PoolingLayer::Reshape: ceil (or floor) rounding, then the padded last window is
    dropped when it would start inside the padding."""
    p = layer.pooling_param
    height, width = in_hw
    if p.global_pooling:
        if p.pad or p.pad_h or p.pad_w or p.stride != 1:
            raise CaffeNetError(f"layer {layer.name!r}: global pooling takes no pad or stride")
        return PoolGeometry(p.pool, (height, width), (1, 1), (0, 0), True, (1, 1))
    kernel = _pick([p.kernel_size] if p.HasField("kernel_size") else [], p.kernel_h, p.kernel_w,
                   p.HasField("kernel_h"), p.HasField("kernel_w"), None, "kernel", layer.name)
    if kernel[0] is None:
        raise CaffeNetError(f"layer {layer.name!r}: pooling without kernel_size")
    stride = _pick([p.stride], p.stride_h, p.stride_w, p.HasField("stride_h"),
                   p.HasField("stride_w"), 1, "stride", layer.name)
    pad = _pick([p.pad], p.pad_h, p.pad_w, p.HasField("pad_h"), p.HasField("pad_w"), 0, "pad",
                layer.name)
    rounding = math.floor if p.round_mode == caffe_pb2.PoolingParameter.FLOOR else math.ceil
    output = []
    for size, k, s, q in zip((height, width), kernel, stride, pad):
        if q >= k:
            raise CaffeNetError(f"layer {layer.name!r}: pad {q} must be smaller than kernel {k}")
        n = int(rounding((size + 2 * q - k) / s)) + 1
        if q and (n - 1) * s >= size + q:
            n -= 1
        if n < 1 or (n - 1) * s - q >= size:
            raise CaffeNetError(f"layer {layer.name!r}: pooling window {k}/stride {s} does not "
                                f"fit input size {size}")
        output.append(n)
    return PoolGeometry(p.pool, kernel, stride, pad, False, (output[0], output[1]))


@dataclass(frozen=True)
class InterpGeometry:
    crop_begin: int  # rows/columns dropped at the start (= -pad_beg)
    crop_end: int  # rows/columns dropped at the end (= -pad_end)
    output: tuple[int, int]


def interp_geometry(layer: caffe_pb2.LayerParameter, in_hw: tuple[int, int]) -> InterpGeometry:
    """PSPNet's InterpLayer::Reshape (the DF-Seg / ICNet fork): shrink, zoom, both, or fixed
    height/width, applied to the input cropped by -pad_beg / -pad_end."""
    p = layer.interp_param
    if p.pad_beg > 0 or p.pad_end > 0:
        raise CaffeNetError(f"layer {layer.name!r}: Interp supports only pad_beg/pad_end <= 0 "
                            f"(cropping), got {p.pad_beg}/{p.pad_end}")
    eff = [size + p.pad_beg + p.pad_end for size in in_hw]
    if min(eff) < 1:
        raise CaffeNetError(f"layer {layer.name!r}: cropping {p.pad_beg}/{p.pad_end} empties "
                            f"input {in_hw}")
    has_shrink, has_zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
    if (has_shrink and p.shrink_factor < 1) or (has_zoom and p.zoom_factor < 1):
        raise CaffeNetError(f"layer {layer.name!r}: shrink/zoom factors must be >= 1")
    if has_shrink and not has_zoom:
        out = [(e - 1) // p.shrink_factor + 1 for e in eff]
    elif has_zoom and not has_shrink:
        out = [e + (e - 1) * (p.zoom_factor - 1) for e in eff]
    elif p.HasField("height") and p.HasField("width"):
        out = [p.height, p.width]
    elif has_shrink and has_zoom:
        out = [(e - 1) // p.shrink_factor + 1 for e in eff]
        out = [o + (o - 1) * (p.zoom_factor - 1) for o in out]
    else:
        raise CaffeNetError(f"layer {layer.name!r}: Interp needs shrink_factor, zoom_factor or "
                            f"height and width")
    if min(out) < 1:
        raise CaffeNetError(f"layer {layer.name!r}: Interp output size {out} is empty")
    return InterpGeometry(-p.pad_beg, -p.pad_end, (int(out[0]), int(out[1])))


def _canonical_axis(axis: int, ndim: int, layer_name: str) -> int:
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < ndim:
        raise CaffeNetError(f"layer {layer_name!r}: axis {axis} out of range for {ndim}-D blob")
    return a


def argmax_axis(layer: caffe_pb2.LayerParameter, ndim: int) -> int | None:
    p = layer.argmax_param
    return _canonical_axis(p.axis, ndim, layer.name) if p.HasField("axis") else None


def concat_axis(layer: caffe_pb2.LayerParameter, ndim: int) -> int:
    p = layer.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis
    return _canonical_axis(axis, ndim, layer.name)


def scale_span(layer: caffe_pb2.LayerParameter, shape: Shape) -> tuple[int, int]:
    """(first axis, number of axes) the Scale layer's factor covers."""
    p = layer.scale_param
    axis = _canonical_axis(p.axis, len(shape), layer.name)
    num_axes = len(shape) - axis if p.num_axes == -1 else p.num_axes
    return axis, num_axes


# --------------------------------------------------------------------------- shapes


def _conv_out(size, k, s, q, d):
    return (size + 2 * q - (d * (k - 1) + 1)) // s + 1


def _deconv_out(size, k, s, q, d):
    return s * (size - 1) + d * (k - 1) + 1 - 2 * q


def layer_shapes(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]
                 ) -> tuple[list[Shape], list[Shape]]:
    """(top shapes, parameter-blob shapes) of one layer given its bottom shapes."""
    kind = layer.type
    name = layer.name

    def need_4d():
        if len(bottoms[0]) != 4:
            raise CaffeNetError(f"layer {name!r} ({kind}) needs a 4-D bottom, got {bottoms[0]}")

    if kind in ("Convolution", "Deconvolution"):
        need_4d()
        g = conv_geometry(layer)
        n, c, h, w = bottoms[0]
        if c % g.group or g.num_output % g.group:
            raise CaffeNetError(f"layer {name!r}: group {g.group} does not divide channels "
                                f"{c} -> {g.num_output}")
        size = _conv_out if kind == "Convolution" else _deconv_out
        oh = size(h, g.kernel[0], g.stride[0], g.pad[0], g.dilation[0])
        ow = size(w, g.kernel[1], g.stride[1], g.pad[1], g.dilation[1])
        if oh < 1 or ow < 1:
            raise CaffeNetError(f"layer {name!r}: output {oh}x{ow} of input {h}x{w} is empty")
        if kind == "Convolution":
            weight = (g.num_output, c // g.group) + g.kernel
        else:
            weight = (c, g.num_output // g.group) + g.kernel
        params = [weight] + ([(g.num_output,)] if g.bias_term else [])
        return [(n, g.num_output, oh, ow)], params
    if kind == "Pooling":
        need_4d()
        geo = pool_geometry(layer, bottoms[0][2:])
        return [bottoms[0][:2] + geo.output], []
    if kind == "Interp":
        need_4d()
        geo = interp_geometry(layer, bottoms[0][2:])
        return [bottoms[0][:2] + geo.output], []
    if kind == "BatchNorm":
        c = bottoms[0][1]
        return [bottoms[0]], [(c,), (c,), (1,)]
    if kind == "Scale":
        axis, num_axes = scale_span(layer, bottoms[0])
        if len(bottoms) == 2:
            expected = bottoms[0][axis:axis + len(bottoms[1])]
            if tuple(bottoms[1]) != tuple(expected):
                raise CaffeNetError(f"layer {name!r}: scale bottom {bottoms[1]} does not match "
                                    f"{bottoms[0]} from axis {axis}")
            factor = tuple(bottoms[1])
            params = [factor] if layer.scale_param.bias_term else []
        else:
            factor = tuple(bottoms[0][axis:axis + num_axes])
            params = [factor] + ([factor] if layer.scale_param.bias_term else [])
        return [bottoms[0]], params
    if kind in ("ReLU", "Dropout", "Softmax", "Sigmoid", "TanH"):
        return [bottoms[0]], []
    if kind == "Split":
        return [bottoms[0]] * len(layer.top), []
    if kind == "Eltwise":
        if any(tuple(b) != tuple(bottoms[0]) for b in bottoms):
            raise CaffeNetError(f"layer {name!r}: Eltwise bottoms differ in shape: {bottoms}")
        coeffs = layer.eltwise_param.coeff
        if coeffs and len(coeffs) != len(bottoms):
            raise CaffeNetError(f"layer {name!r}: {len(coeffs)} coefficients for "
                                f"{len(bottoms)} bottoms")
        return [bottoms[0]], []
    if kind == "Concat":
        axis = concat_axis(layer, len(bottoms[0]))
        for b in bottoms[1:]:
            if len(b) != len(bottoms[0]) or any(
                    b[i] != bottoms[0][i] for i in range(len(b)) if i != axis):
                raise CaffeNetError(f"layer {name!r}: Concat bottoms {bottoms} differ outside "
                                    f"axis {axis}")
        out = list(bottoms[0])
        out[axis] = sum(b[axis] for b in bottoms)
        return [tuple(out)], []
    if kind == "InnerProduct":
        p = layer.inner_product_param
        axis = _canonical_axis(p.axis, len(bottoms[0]), name)
        k = math.prod(bottoms[0][axis:])
        weight = (k, p.num_output) if p.transpose else (p.num_output, k)
        params = [weight] + ([(p.num_output,)] if p.bias_term else [])
        return [tuple(bottoms[0][:axis]) + (p.num_output,)], params
    if kind == "Flatten":
        p = layer.flatten_param
        ndim = len(bottoms[0])
        a = _canonical_axis(p.axis, ndim, name)
        e = _canonical_axis(p.end_axis, ndim, name)
        shape = bottoms[0]
        return [tuple(shape[:a]) + (math.prod(shape[a:e + 1]),) + tuple(shape[e + 1:])], []
    if kind == "ArgMax":
        p = layer.argmax_param
        axis = argmax_axis(layer, len(bottoms[0]))
        if axis is None:
            return [(bottoms[0][0], 2 if p.out_max_val else 1, p.top_k)], []
        out = list(bottoms[0])
        out[axis] = p.top_k
        return [tuple(out)], []
    raise CaffeNetError(f"layer {name!r}: unsupported layer type {kind!r}")


# --------------------------------------------------------------------------- the net


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


def _declared_inputs(param: caffe_pb2.NetParameter) -> dict[str, Shape]:
    inputs: dict[str, Shape] = {}
    if param.input_shape:
        for name, shape in zip(param.input, param.input_shape):
            inputs[name] = tuple(int(d) for d in shape.dim)
    elif param.input_dim:
        if len(param.input_dim) != 4 * len(param.input):
            raise CaffeNetError(f"net {param.name!r}: {len(param.input_dim)} input_dim values "
                                f"for {len(param.input)} inputs")
        for i, name in enumerate(param.input):
            inputs[name] = tuple(int(d) for d in param.input_dim[4 * i:4 * i + 4])
    elif param.input:
        raise CaffeNetError(f"net {param.name!r}: input {list(param.input)} has no shape")
    return inputs


def build_net(net: caffe_pb2.NetParameter | str | Path,
              input_shape: Shape | None = None) -> CaffeNet:
    """Interpret a prototxt (path or message) in TEST phase.

    `input_shape` (N, C, H, W) replaces the shape of the net's single input — and gives one to
    a data layer (ImageData, Data, ...), whose first top becomes the input and whose other tops
    (labels) are dropped together with the evaluation layers that read them."""
    param = load_net_param(net)
    if param.layers:
        raise CaffeNetError(f"net {param.name!r}: V1 'layers' definitions are not supported; "
                            f"upgrade with Caffe's upgrade_net_proto_text")
    inputs = _declared_inputs(param)
    layers: list[caffe_pb2.LayerParameter] = []
    dropped: list[str] = []
    unavailable: set[str] = set()
    for layer in param.layer:
        if not layer_runs_in(layer):
            continue
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            for i, top in enumerate(layer.top):
                if not shapes:
                    raise CaffeNetError(f"layer {layer.name!r}: Input layer without shape")
                inputs[top] = tuple(int(d) for d in shapes[min(i, len(shapes) - 1)].dim)
            continue
        if is_data_layer(layer):
            if input_shape is None:
                raise CaffeNetError(f"layer {layer.name!r}: data layer {layer.type} has no fixed "
                                    f"shape; give the input shape (--input NxCxHxW)")
            inputs[layer.top[0]] = tuple(input_shape)
            unavailable.update(layer.top[1:])
            dropped.append(f"{layer.name} ({layer.type}: replaced by input {layer.top[0]!r})")
            continue
        if layer.type in EVALUATION_LAYER_TYPES or layer.type.endswith("Loss"):
            dropped.append(f"{layer.name} ({layer.type}: evaluation only)")
            unavailable.update(layer.top)
            continue
        missing = [b for b in layer.bottom if b in unavailable]
        if missing:
            raise CaffeNetError(f"layer {layer.name!r} ({layer.type}) reads {missing}, which a "
                                f"deployed net does not have")
        layers.append(layer)
    if not inputs:
        raise CaffeNetError(f"net {param.name!r}: no input (Input layer, input_dim or data layer)")
    if input_shape is not None:
        if len(inputs) != 1:
            raise CaffeNetError(f"net {param.name!r}: --input given but the net has inputs "
                                f"{sorted(inputs)}")
        inputs = {next(iter(inputs)): tuple(int(d) for d in input_shape)}

    result = CaffeNet(param.name or "net", layers, inputs, dropped=dropped)
    shapes = dict(inputs)
    for layer in layers:
        for b in layer.bottom:
            if b not in shapes:
                raise CaffeNetError(f"layer {layer.name!r} reads blob {b!r}, which no earlier "
                                    f"layer produces")
        if len(layer.top) < 1:
            raise CaffeNetError(f"layer {layer.name!r} has no top")
        bottoms = [shapes[b] for b in layer.bottom]
        if not bottoms:
            raise CaffeNetError(f"layer {layer.name!r} ({layer.type}) has no bottom")
        tops, params = layer_shapes(layer, bottoms)
        result.bottom_shapes[layer.name] = bottoms
        for top, shape in zip(layer.top, tops):
            shapes[top] = shape
        if layer.name in result.param_shapes:
            raise CaffeNetError(f"two layers are named {layer.name!r}")
        result.param_shapes[layer.name] = params
    result.blob_shapes = shapes
    return result
