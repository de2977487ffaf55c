"""Per-layer shape rules, written after Caffe's own ``LayerSetUp``/``Reshape`` code.

Each rule takes a ``caffe_pb2.LayerParameter`` and the shapes of its bottoms and returns
the shapes of its tops with the layer's parameter count and multiply-accumulates
(:class:`LayerCost`).  The rules reproduce Caffe's integer arithmetic exactly (C++
truncating division for convolution, float ``ceil`` for pooling, the last-window clip of
padded pooling, PSPNet's ``Interp`` size rules), and raise :class:`ShapeError` where
Caffe would abort with a ``CHECK`` failure.

Conventions:
- ``params`` counts every element of the layer's parameter blobs, i.e. what a
  ``.caffemodel`` stores for it (BatchNorm's mean/variance/factor included).
- ``macs`` counts multiply-accumulates of the weighted layers (Convolution,
  Deconvolution, InnerProduct); element-wise layers, pooling and resizing count 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import caffe_pb2

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """The layer cannot be set up on these bottoms (Caffe would abort)."""


class NeedsInputShape(ShapeError):
    """A data layer whose output size only the data itself could tell."""


@dataclass
class LayerCost:
    tops: list[Shape]
    params: int = 0
    macs: int = 0
    notes: list[str] = field(default_factory=list)


def count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    return math.prod(shape[start:end])


def trunc_div(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def canonical_axis(axis: int, num_axes: int) -> int:
    """Blob::CanonicalAxisIndex."""
    if not -num_axes <= axis < num_axes:
        raise ShapeError(f"axis {axis} out of range for a {num_axes}-axis blob")
    return axis + num_axes if axis < 0 else axis


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ShapeError(message)


EMPTY_OUTPUT = "output shape {} is empty"


def _check_shape(shape: Shape) -> Shape:
    # Caffe aborts on negative sizes; it may accept an empty (zero-size) blob, but then most
    # layers abort on it (e.g. Convolution's bias multiplier), so we refuse both.
    _check(all(d > 0 for d in shape), EMPTY_OUTPUT.format(list(shape)) + " (input too small "
           "for the kernel/stride/pad?)" if all(d >= 0 for d in shape)
           else f"negative dimension in output shape {list(shape)}")
    return tuple(int(d) for d in shape)


def _bottoms(bottoms: list[Shape], exact: int | None = None, minimum: int | None = None) -> None:
    if exact is not None:
        _check(len(bottoms) == exact, f"needs {exact} bottom(s), has {len(bottoms)}")
    if minimum is not None:
        _check(len(bottoms) >= minimum, f"needs at least {minimum} bottom(s), has {len(bottoms)}")


RULES: dict[str, Callable[[caffe_pb2.LayerParameter, list[Shape]], LayerCost]] = {}


def rule(*types: str):
    def register(fn):
        for t in types:
            RULES[t] = fn
        return fn
    return register


# --------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    pad: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]


def _nd_values(p, name: str, n: int, default: int) -> tuple[int, ...]:
    values = list(getattr(p, name))
    _check(len(values) in (0, 1, n),
           f"{name} must be specified once or once per spatial dimension ({n}), got {len(values)}")
    if not values:
        return (default,) * n
    return tuple(values[0] if len(values) == 1 else values[i] for i in range(n))


def _hw_values(p, name: str, field: str, num_spatial: int) -> tuple[int, int] | None:
    """``<name>_h``/``<name>_w`` when either is set (2-D only, not with ``field``), else None."""
    if not (p.HasField(f"{name}_h") or p.HasField(f"{name}_w")):
        return None
    _check(num_spatial == 2, f"{name}_h & {name}_w can only be used for 2D convolution")
    _check(len(getattr(p, field)) == 0,
           f"either {field} or {name}_h/w should be specified; not both")
    return getattr(p, f"{name}_h"), getattr(p, f"{name}_w")


def conv_geometry(p: caffe_pb2.ConvolutionParameter, num_spatial: int) -> ConvGeometry:
    """BaseConvolutionLayer::LayerSetUp's reading of kernel/pad/stride/dilation."""
    kernel = _hw_values(p, "kernel", "kernel_size", num_spatial)
    if kernel is None:
        _check(len(p.kernel_size) in (1, num_spatial),
               f"kernel_size must be specified once, or once per spatial dimension "
               f"(kernel_size specified {len(p.kernel_size)} times; {num_spatial} spatial dims)")
        kernel = _nd_values(p, "kernel_size", num_spatial, 0)
    _check(all(k > 0 for k in kernel), "filter dimensions must be nonzero")
    stride = _hw_values(p, "stride", "stride", num_spatial) or _nd_values(p, "stride", num_spatial, 1)
    _check(all(s > 0 for s in stride), "stride dimensions must be nonzero")
    pad = _hw_values(p, "pad", "pad", num_spatial) or _nd_values(p, "pad", num_spatial, 0)
    dilation = _nd_values(p, "dilation", num_spatial, 1)
    return ConvGeometry(tuple(kernel), tuple(pad), tuple(stride), tuple(dilation))


def conv_output_size(size: int, kernel: int, pad: int, stride: int, dilation: int = 1) -> int:
    """ConvolutionLayer::compute_output_shape for one spatial axis."""
    extent = dilation * (kernel - 1) + 1
    return trunc_div(size + 2 * pad - extent, stride) + 1


def deconv_output_size(size: int, kernel: int, pad: int, stride: int, dilation: int = 1) -> int:
    """DeconvolutionLayer::compute_output_shape for one spatial axis."""
    extent = dilation * (kernel - 1) + 1
    return stride * (size - 1) + extent - 2 * pad


def pool_output_size(size: int, kernel: int, pad: int, stride: int,
                     round_mode: int = caffe_pb2.PoolingParameter.CEIL) -> int:
    """PoolingLayer::Reshape for one axis: float ceil (or floor, per ``round_mode``), then
    the clip of a last window that would start in the padding."""
    rounding = math.floor if round_mode == caffe_pb2.PoolingParameter.FLOOR else math.ceil
    pooled = int(rounding(np.float32(size + 2 * pad - kernel) / np.float32(stride))) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


@dataclass(frozen=True)
class PoolGeometry:
    """A Pooling layer's window on a given (H, W) input, as PoolingLayer sets it up."""
    method: int  # caffe_pb2.PoolingParameter.MAX / AVE / STOCHASTIC
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    global_pooling: bool
    output: tuple[int, int]


def pool_geometry(p: caffe_pb2.PoolingParameter, in_hw: tuple[int, int]) -> PoolGeometry:
    """PoolingLayer::LayerSetUp and Reshape for an (H, W) input, with their checks."""
    has_kernel_hw = p.HasField("kernel_h") and p.HasField("kernel_w")
    if p.global_pooling:
        _check(not (p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w")),
               "with global_pooling: true filter size cannot be specified")
        kernel = tuple(in_hw)
    else:
        _check(p.HasField("kernel_size") != has_kernel_hw,
               "filter size is kernel_size OR kernel_h and kernel_w; not both")
        kernel = (p.kernel_size, p.kernel_size) if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
    _check((not p.HasField("pad") and p.HasField("pad_h") and p.HasField("pad_w"))
           or (not p.HasField("pad_h") and not p.HasField("pad_w")),
           "pad is pad OR pad_h and pad_w are required")
    _check((not p.HasField("stride") and p.HasField("stride_h") and p.HasField("stride_w"))
           or (not p.HasField("stride_h") and not p.HasField("stride_w")),
           "stride is stride OR stride_h and stride_w are required")
    _check(kernel[0] > 0 and kernel[1] > 0, "filter dimensions cannot be zero")
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    _check(stride[0] > 0 and stride[1] > 0, "stride cannot be zero")
    if p.global_pooling:
        _check(pad == (0, 0) and stride == (1, 1), "with global pooling: true; only pad = 0 and stride = 1")
    if pad != (0, 0):
        _check(p.pool in (p.AVE, p.MAX), "padding implemented only for average and max pooling")
        _check(pad[0] < kernel[0] and pad[1] < kernel[1], "pad must be smaller than the kernel")
    out = tuple(pool_output_size(in_hw[i], kernel[i], pad[i], stride[i], p.round_mode)
                for i in range(2))
    _check(all(o > 0 for o in out), EMPTY_OUTPUT.format(list(out)) + " (input too small "
           "for the kernel/stride/pad?)")
    for i in range(2 if pad != (0, 0) else 0):
        # Reshape's CHECK_LT (made only for padded pooling): after the clip, the last window
        # starts inside the input or its padding.
        _check((out[i] - 1) * stride[i] < in_hw[i] + pad[i],
               f"last pooling window starts outside the input (size {in_hw[i]}, kernel "
               f"{kernel[i]}, stride {stride[i]}, pad {pad[i]})")
    return PoolGeometry(p.pool, tuple(kernel), tuple(stride), tuple(pad), bool(p.global_pooling),
                        out)


def interp_output_size(size: int, p: caffe_pb2.InterpParameter, target: int | None) -> int:
    """PSPNet's InterpLayer::Reshape for one axis (``target`` = height or width field)."""
    effective = size + p.pad_beg + p.pad_end
    has_zoom, has_shrink = p.HasField("zoom_factor"), p.HasField("shrink_factor")
    if has_shrink and not has_zoom:
        _check(p.shrink_factor >= 1, "shrink factor must be positive")
        out = trunc_div(effective - 1, p.shrink_factor) + 1
    elif has_zoom and not has_shrink:
        _check(p.zoom_factor >= 1, "zoom factor must be positive")
        out = effective + (effective - 1) * (p.zoom_factor - 1)
    elif target is not None:
        out = target
    elif has_shrink and has_zoom:
        _check(p.shrink_factor >= 1, "shrink factor must be positive")
        _check(p.zoom_factor >= 1, "zoom factor must be positive")
        out = trunc_div(effective - 1, p.shrink_factor) + 1
        out = out + (out - 1) * (p.zoom_factor - 1)
    else:
        raise ShapeError("interp_param needs zoom_factor, shrink_factor or height and width")
    _check(effective > 0, "height/width of input must be positive after padding")
    _check(out > 0, "output height/width must be positive")
    return out


def interp_output_hw(p: caffe_pb2.InterpParameter, in_hw: tuple[int, int]) -> tuple[int, int]:
    """PSPNet's InterpLayer::Reshape: the (H, W) output for an (H, W) input."""
    _check(p.pad_beg <= 0 and p.pad_end <= 0, f"pad_beg/pad_end {p.pad_beg}/{p.pad_end}: only "
           "supports non-positive padding (cropping) for now")
    has_size = p.HasField("height") and p.HasField("width")
    return (interp_output_size(in_hw[0], p, p.height if has_size else None),
            interp_output_size(in_hw[1], p, p.width if has_size else None))


# --------------------------------------------------------------------------- data layers

def _data_shape_error(why: str) -> NeedsInputShape:
    return NeedsInputShape(f"{why}; give the input size (e.g. --input 1x3x1024x2048)")


@rule("Input")
def _input(layer, bottoms):
    shapes = [tuple(s.dim) for s in layer.input_param.shape]
    n_top = len(layer.top)
    _check(len(shapes) in (0, 1, n_top),
           "must specify 'shape' once, once per top blob, or not at all")
    if not shapes:
        raise _data_shape_error("the Input layer gives no shape")
    return LayerCost([_check_shape(shapes[0] if len(shapes) == 1 else shapes[i])
                      for i in range(n_top)])


def _crop_hw(t: caffe_pb2.TransformationParameter) -> tuple[int, int] | None:
    if t.crop_size > 0:
        return t.crop_size, t.crop_size
    if t.crop_h > 0 and t.crop_w > 0:  # the POP fork's rectangular crop
        return t.crop_h, t.crop_w
    return None


def _with_label(layer, data: Shape) -> LayerCost:
    tops = [data]
    if len(layer.top) > 1:
        tops.append((data[0],))
    return LayerCost(tops)


@rule("ImageData")
def _image_data(layer, bottoms):
    p = layer.image_data_param
    channels = 3 if p.is_color else 1
    hw = _crop_hw(layer.transform_param)
    if hw is None and p.new_height > 0 and p.new_width > 0:
        hw = (p.new_height, p.new_width)
    if hw is None:
        raise _data_shape_error("ImageData without crop or new_height/new_width "
                                "takes its size from the images")
    return _with_label(layer, (p.batch_size, channels) + hw)


@rule("DenseImageData")
def _dense_image_data(layer, bottoms):
    # The SegNet fork's image + label-image reader: the label top is a 1-channel image.
    p = layer.dense_image_data_param
    channels = 3 if p.is_color else 1
    hw = _crop_hw(layer.transform_param)
    if hw is None and p.new_height > 0 and p.new_width > 0:
        hw = (p.new_height, p.new_width)
    if hw is None:
        raise _data_shape_error("DenseImageData without crop or new_height/new_width "
                                "takes its size from the images")
    tops = [(p.batch_size, channels) + hw]
    if len(layer.top) > 1:
        tops.append((p.batch_size, 1) + hw)
    return LayerCost(tops)


@rule("Data")
def _data(layer, bottoms):
    raise _data_shape_error("the Data layer's shape comes from its database")


@rule("MemoryData")
def _memory_data(layer, bottoms):
    p = layer.memory_data_param
    return _with_label(layer, (p.batch_size, p.channels, p.height, p.width))


@rule("DummyData")
def _dummy_data(layer, bottoms):
    p = layer.dummy_data_param
    if len(p.shape):
        shapes = [tuple(s.dim) for s in p.shape]
    else:
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        n = max(len(v) for v in legacy)
        _check(n > 0, "dummy_data_param gives no shape")
        shapes = [tuple(v[0] if len(v) == 1 else v[i] for v in legacy) for i in range(n)]
    n_top = len(layer.top)
    _check(len(shapes) in (1, n_top), "need 1 shape or one per top")
    return LayerCost([_check_shape(shapes[0] if len(shapes) == 1 else shapes[i])
                      for i in range(n_top)])


@rule("HDF5Data", "WindowData")
def _opaque_data(layer, bottoms):
    raise _data_shape_error(f"the shape of a {layer.type} layer's output is only "
                            "known when it runs")


@rule("Python")
def _python(layer, bottoms):
    raise ShapeError("a Python layer's shapes are decided by its Python code; they cannot be "
                     "inferred")


# --------------------------------------------------------------------------- weighted layers

def _conv_like(layer, bottoms, deconv: bool) -> LayerCost:
    _bottoms(bottoms, minimum=1)
    _check(len(layer.top) == len(bottoms), "needs one top per bottom")
    p = layer.convolution_param
    shape = bottoms[0]
    for other in bottoms[1:]:
        _check(other == shape, "all inputs must have the same shape")
    channel_axis = canonical_axis(p.axis, len(shape))
    num_spatial = len(shape) - channel_axis - 1
    _check(num_spatial >= 0, "no spatial axes")
    g = conv_geometry(p, num_spatial)
    channels = shape[channel_axis]
    _check(p.num_output > 0, "num_output must be positive")
    _check(p.group > 0, "group must be positive")
    _check(channels % p.group == 0, f"number of input channels ({channels}) must be a "
           f"multiple of group ({p.group})")
    _check(p.num_output % p.group == 0, f"num_output ({p.num_output}) must be a multiple "
           f"of group ({p.group})")
    size_fn = deconv_output_size if deconv else conv_output_size
    spatial_in = shape[channel_axis + 1:]
    spatial_out = tuple(size_fn(spatial_in[i], g.kernel[i], g.pad[i], g.stride[i], g.dilation[i])
                        for i in range(num_spatial))
    top = _check_shape(shape[:channel_axis] + (p.num_output,) + spatial_out)
    kernel = math.prod(g.kernel)
    weights = p.num_output * (channels // p.group) * kernel
    params = weights + (p.num_output if p.bias_term else 0)
    outer = count(shape, 0, channel_axis)
    # MACs: every output (input, for deconvolution) position does a (C/g)x(kernel) dot
    # product per output channel.
    if deconv:
        macs = outer * math.prod(spatial_in) * channels * (p.num_output // p.group) * kernel
    else:
        macs = outer * math.prod(spatial_out) * p.num_output * (channels // p.group) * kernel
    macs *= len(bottoms)
    return LayerCost([top] * len(bottoms), params, macs)


@rule("Convolution")
def _convolution(layer, bottoms):
    return _conv_like(layer, bottoms, deconv=False)


@rule("Deconvolution")
def _deconvolution(layer, bottoms):
    return _conv_like(layer, bottoms, deconv=True)


@rule("InnerProduct")
def _inner_product(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.inner_product_param
    shape = bottoms[0]
    axis = canonical_axis(p.axis, len(shape))
    k = count(shape, axis)
    m = count(shape, 0, axis)
    _check(p.num_output > 0, "num_output must be positive")
    params = p.num_output * k + (p.num_output if p.bias_term else 0)
    return LayerCost([_check_shape(shape[:axis] + (p.num_output,))], params, m * k * p.num_output)


# --------------------------------------------------------------------------- spatial

@rule("Pooling")
def _pooling(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.pooling_param
    shape = bottoms[0]
    _check(len(shape) == 4, "input must have 4 axes, corresponding to (num, channels, height, width)")
    _check(len(layer.top) <= (2 if p.pool == p.MAX else 1), "too many tops")
    top = _check_shape(shape[:2] + pool_geometry(p, shape[2:]).output)
    return LayerCost([top] * max(1, len(layer.top)))


@rule("Interp")
def _interp(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.interp_param
    shape = bottoms[0]
    _check(len(shape) == 4, "Interp needs a 4-axis (N, C, H, W) input")
    return LayerCost([_check_shape(shape[:2] + interp_output_hw(p, shape[2:]))])


def upsample_output_hw(p: caffe_pb2.UpsampleParameter, in_hw: tuple[int, int]) -> tuple[int, int]:
    """SegNet / ENet max-unpooling: upsample_h/_w when given, else in * scale_h/_w (each
    defaulting to scale), one less on an axis whose pad_out_h/_w is set."""
    scale_h = p.scale_h if p.HasField("scale_h") else p.scale
    scale_w = p.scale_w if p.HasField("scale_w") else p.scale
    out_h = p.upsample_h if p.HasField("upsample_h") else in_hw[0] * scale_h - int(p.pad_out_h)
    out_w = p.upsample_w if p.HasField("upsample_w") else in_hw[1] * scale_w - int(p.pad_out_w)
    return out_h, out_w


@rule("Upsample")
def _upsample(layer, bottoms):
    _bottoms(bottoms, exact=2)
    shape = bottoms[0]
    _check(len(shape) == 4, "Upsample needs a 4-axis (N, C, H, W) input")
    _check(bottoms[1] == shape, f"the mask {bottoms[1]} must have the data's shape {shape}")
    return LayerCost([_check_shape(shape[:2] + upsample_output_hw(layer.upsample_param, shape[2:]))])


@rule("Crop")
def _crop(layer, bottoms):
    _bottoms(bottoms, exact=2)
    p = layer.crop_param
    shape, reference = bottoms
    start = canonical_axis(p.axis, len(shape))
    if len(p.offset) > 1:
        _check(start + len(p.offset) == len(shape), "number of offset values specified must "
               "be equal to the number of dimensions following axis")
    out = list(shape)
    for i in range(start, len(shape)):
        offset = p.offset[0] if len(p.offset) == 1 else (p.offset[i - start] if p.offset else 0)
        _check(i < len(reference), "reference blob has too few axes")
        _check(shape[i] - offset >= reference[i], f"invalid crop parameters in dimension: {i}")
        out[i] = reference[i]
    return LayerCost([_check_shape(tuple(out))])


# --------------------------------------------------------------------------- joining/splitting

def legacy_axis(p, legacy_field: str, num_axes: int) -> int:
    """The axis of a Concat/Slice parameter: its old ``concat_dim``/``slice_dim`` field when
    set (not counted from the end), else ``axis``."""
    if p.HasField(legacy_field):
        _check(not p.HasField("axis"), f"either axis or {legacy_field} should be specified; not both")
        axis = getattr(p, legacy_field)
        _check(axis < num_axes, f"{legacy_field} {axis} out of range")
        return axis
    return canonical_axis(p.axis, num_axes)


@rule("Concat")
def _concat(layer, bottoms):
    _bottoms(bottoms, minimum=1)
    p = layer.concat_param
    first = bottoms[0]
    axis = legacy_axis(p, "concat_dim", len(first))
    out = list(first)
    for i, other in enumerate(bottoms[1:], start=1):
        _check(len(other) == len(first), "all inputs must have the same #axes")
        for j in range(len(first)):
            if j != axis:
                _check(other[j] == first[j], f"all inputs must have the same shape, except at "
                       f"concat_axis (bottom 0 is {list(first)}, bottom {i} is {list(other)})")
        out[axis] += other[axis]
    return LayerCost([tuple(out)])


@rule("Eltwise")
def _eltwise(layer, bottoms):
    _bottoms(bottoms, minimum=2)
    p = layer.eltwise_param
    _check(len(p.coeff) in (0, len(bottoms)), "Eltwise layer takes one coefficient per bottom blob")
    for i, other in enumerate(bottoms[1:], start=1):
        _check(other == bottoms[0], f"all bottoms must have the same shape "
               f"(bottom 0 is {list(bottoms[0])}, bottom {i} is {list(other)})")
    return LayerCost([bottoms[0]])


@rule("Split")
def _split(layer, bottoms):
    _bottoms(bottoms, exact=1)
    return LayerCost([bottoms[0]] * len(layer.top))


@rule("Slice")
def _slice(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.slice_param
    shape = bottoms[0]
    axis = legacy_axis(p, "slice_dim", len(shape))
    size = shape[axis]
    n_top = len(layer.top)
    if len(p.slice_point):
        _check(len(p.slice_point) == n_top - 1, "need one slice_point fewer than tops")
        _check(n_top <= size, "more tops than slices")
        sizes, prev = [], 0
        for point in p.slice_point:
            _check(point > prev, "slice points must increase")
            sizes.append(point - prev)
            prev = point
        sizes.append(size - prev)
    else:
        _check(n_top > 0 and size % n_top == 0, f"number of top blobs ({n_top}) should evenly "
               f"divide input slice axis ({size})")
        sizes = [size // n_top] * n_top
    return LayerCost([_check_shape(shape[:axis] + (s,) + shape[axis + 1:]) for s in sizes])


@rule("Flatten")
def _flatten(layer, bottoms):
    _bottoms(bottoms, exact=1)
    _check(layer.top[0] != layer.bottom[0], "Flatten layer does not allow in-place computation")
    shape = bottoms[0]
    start = canonical_axis(layer.flatten_param.axis, len(shape))
    end = canonical_axis(layer.flatten_param.end_axis, len(shape))
    return LayerCost([shape[:start] + (count(shape, start, end + 1),) + shape[end + 1:]])


@rule("Reshape")
def _reshape(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.reshape_param
    shape = bottoms[0]
    dims = list(p.shape.dim)
    _check(dims.count(-1) <= 1, "new shape contains multiple -1 dims; at most a single (1) "
           "value of -1 may be specified")
    start = p.axis if p.axis >= 0 else len(shape) + p.axis + 1
    _check(0 <= start <= len(shape), f"axis {p.axis} out of range")
    _check(p.num_axes >= -1, "num_axes must be >= 0, or -1 for all")
    end = len(shape) if p.num_axes == -1 else start + p.num_axes
    _check(end <= len(shape), "end_axis out of range")
    out = list(shape[:start]) + dims + list(shape[end:])
    for i, d in enumerate(dims):
        if d == 0:
            _check(start + i < len(shape), "new shape contains a 0, but there was no "
                   "corresponding bottom axis to copy")
            out[start + i] = shape[start + i]
    if -1 in dims:
        i = dims.index(-1)
        known = math.prod(d for j, d in enumerate(out[start:start + len(dims)]) if j != i)
        known *= count(shape, 0, start) * count(shape, end)
        _check(known != 0 and count(shape) % known == 0,
               f"bottom count ({count(shape)}) must be divisible by the product of the "
               f"specified dimensions ({known})")
        out[start + i] = count(shape) // known
    _check(count(tuple(out)) == count(shape), f"output count {count(tuple(out))} must match "
           f"input count {count(shape)}")
    return LayerCost([_check_shape(tuple(out))])


# --------------------------------------------------------------------------- element-wise

@rule("ReLU", "Dropout", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "ELU",
      "Threshold", "LRN", "MVN", "Clip", "Swish", "Softmax")
def _same_shape(layer, bottoms):
    _bottoms(bottoms, exact=1)
    return LayerCost([bottoms[0]])


@rule("ShuffleChannel")
def _shuffle_channel(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    group = layer.shuffle_channel_param.group
    _check(len(shape) >= 2, "ShuffleChannel needs a channel axis (N, C, ...)")
    _check(group >= 1 and shape[1] % group == 0,
           f"{shape[1]} channels do not split into {group} groups")
    return LayerCost([shape])


@rule("BatchNorm")
def _batch_norm(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    channels = shape[1] if len(shape) > 1 else 1
    return LayerCost([shape], params=2 * channels + 1)  # mean, variance, moving-average factor


def bn_blob_count(p: caffe_pb2.BNParameter) -> int:
    """Parameter blobs (each 1 x C x 1 x 1) of a fork's BN layer: the SegNet fork's scale and
    shift, when bn_param uses its field names (scale_filler, shift_filler, bn_mode); else the
    PSPNet fork's slope, bias, mean and variance."""
    segnet = any(p.HasField(name) for name in ("scale_filler", "shift_filler", "bn_mode"))
    return 2 if segnet else 4


@rule("BN")
def _fork_bn(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    _check(len(shape) == 4, "BN needs a 4-axis (N, C, H, W) input")
    return LayerCost([shape], params=bn_blob_count(layer.bn_param) * shape[1])


def _affine_shape(shape: Shape, axis: int, num_axes: int) -> Shape:
    axis = canonical_axis(axis, len(shape)) if shape else 0
    _check(num_axes >= -1, "num_axes must be non-negative, or -1 to extend to the end of bottom[0]")
    if num_axes >= 0:
        _check(len(shape) >= axis + num_axes, "scale blob's shape extends past bottom[0]'s shape")
    return shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes]


@rule("Scale")
def _scale(layer, bottoms):
    _bottoms(bottoms, minimum=1)
    _check(len(bottoms) <= 2, "Scale takes one or two bottoms")
    p = layer.scale_param
    if len(bottoms) == 1:
        scale_shape = _affine_shape(bottoms[0], p.axis, p.num_axes)
        params = count(scale_shape) * (2 if p.bias_term else 1)
    else:
        scale_shape = bottoms[1]
        if scale_shape:
            axis = canonical_axis(p.axis, len(bottoms[0]))
            _check(bottoms[0][axis:axis + len(scale_shape)] == scale_shape,
                   f"scale blob {list(scale_shape)} does not match bottom[0] {list(bottoms[0])}")
        params = count(scale_shape) if p.bias_term else 0
    return LayerCost([bottoms[0]], params=params)


@rule("Bias")
def _bias(layer, bottoms):
    _bottoms(bottoms, minimum=1)
    p = layer.bias_param
    params = count(_affine_shape(bottoms[0], p.axis, p.num_axes)) if len(bottoms) == 1 else 0
    return LayerCost([bottoms[0]], params=params)


@rule("PReLU")
def _prelu(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    _check(len(shape) >= 2, "number of axes of bottom blob must be >=2")
    return LayerCost([shape], params=1 if layer.prelu_param.channel_shared else shape[1])


# --------------------------------------------------------------------------- heads

@rule("ArgMax")
def _argmax(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.argmax_param
    shape = bottoms[0]
    _check(p.top_k >= 1, "top k must not be less than 1")
    if p.HasField("axis"):
        axis = canonical_axis(p.axis, len(shape))
        _check(p.top_k <= shape[axis], "top_k must be less than or equal to the dimension of the axis")
        out = list(shape)
        out[axis] = p.top_k
    else:
        _check(p.top_k <= count(shape, 1), "top_k must be less than or equal to the number of classes")
        out = [1] * max(3, len(shape))
        out[0] = shape[0]
        out[2] = p.top_k
        if p.out_max_val:
            out[1] = 2
    return LayerCost([tuple(out)])


@rule("Accuracy")
def _accuracy(layer, bottoms):
    _bottoms(bottoms, exact=2)
    p = layer.accuracy_param
    scores, labels = bottoms
    axis = canonical_axis(p.axis, len(scores))
    _check(p.top_k <= count(scores) // max(count(labels), 1),
           "top_k must be less than or equal to the number of classes")
    _check(count(scores, 0, axis) * count(scores, axis + 1) == count(labels),
           f"number of labels ({count(labels)}) must match number of predictions "
           f"({count(scores, 0, axis) * count(scores, axis + 1)})")
    tops = [()]
    if len(layer.top) > 1:
        tops.append((scores[axis],))
    return LayerCost(tops)


LOSS_TYPES = ("SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
              "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss")


@rule(*LOSS_TYPES)
def _loss(layer, bottoms):
    _bottoms(bottoms, minimum=2)
    if layer.type == "SoftmaxWithLoss":
        scores, labels = bottoms[0], bottoms[1]
        axis = canonical_axis(layer.softmax_param.axis, len(scores))
        predictions = count(scores, 0, axis) * count(scores, axis + 1)
        _check(predictions == count(labels), f"number of labels ({count(labels)}) must match "
               f"number of predictions ({predictions})")
    elif layer.type == "EuclideanLoss":
        _check(count(bottoms[0], 1) == count(bottoms[1], 1),
               "inputs must have the same dimension")
    tops = [()]
    if len(layer.top) > 1:  # SoftmaxWithLoss's optional probability output
        tops.append(bottoms[0])
    return LayerCost(tops)


@rule("Silence")
def _silence(layer, bottoms):
    return LayerCost([])


@rule("Reduction")
def _reduction(layer, bottoms):
    _bottoms(bottoms, exact=1)
    axis = canonical_axis(layer.reduction_param.axis, len(bottoms[0])) if bottoms[0] else 0
    return LayerCost([bottoms[0][:axis]])


@rule("Tile")
def _tile(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.tile_param
    _check(p.tiles > 0, "number of tiles must be positive")
    shape = list(bottoms[0])
    axis = canonical_axis(p.axis, len(shape))
    shape[axis] *= p.tiles
    return LayerCost([tuple(shape)])
