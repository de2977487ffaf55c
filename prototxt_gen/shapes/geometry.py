"""Caffe's size arithmetic for one layer's window: convolution/deconvolution, pooling,
PSPNet's Interp, SegNet's Upsample, and the legacy Concat/Slice axis field.  Tools that
lay out a net themselves (the exporters, the zoo) share these."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import caffe_pb2
from .core import EMPTY_OUTPUT, ShapeError, _check, canonical_axis, trunc_div

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


def upsample_output_hw(p: caffe_pb2.UpsampleParameter, in_hw: tuple[int, int]) -> tuple[int, int]:
    """SegNet / ENet max-unpooling: upsample_h/_w when given, else in * scale_h/_w (each
    defaulting to scale), one less on an axis whose pad_out_h/_w is set."""
    scale_h = p.scale_h if p.HasField("scale_h") else p.scale
    scale_w = p.scale_w if p.HasField("scale_w") else p.scale
    out_h = p.upsample_h if p.HasField("upsample_h") else in_hw[0] * scale_h - int(p.pad_out_h)
    out_w = p.upsample_w if p.HasField("upsample_w") else in_hw[1] * scale_w - int(p.pad_out_w)
    return out_h, out_w


def legacy_axis(p, legacy_field: str, num_axes: int) -> int:
    """The axis of a Concat/Slice parameter: its old ``concat_dim``/``slice_dim`` field when
    set (not counted from the end), else ``axis``."""
    if p.HasField(legacy_field):
        _check(not p.HasField("axis"), f"either axis or {legacy_field} should be specified; not both")
        axis = getattr(p, legacy_field)
        _check(axis < num_axes, f"{legacy_field} {axis} out of range")
        return axis
    return canonical_axis(p.axis, num_axes)
