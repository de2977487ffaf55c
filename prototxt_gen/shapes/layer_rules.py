"""Shape rules of the weighted, spatial and joining/splitting layers."""
from __future__ import annotations

import math

from .catalogue import param_count
from .core import LayerCost, _bottoms, _check, _check_shape, canonical_axis, count, rule
from .geometry import (conv_geometry, conv_output_size, deconv_output_size, interp_output_hw,
                       legacy_axis, pool_geometry, upsample_output_hw)

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
    outer = count(shape, 0, channel_axis)
    # MACs: every output (input, for deconvolution) position does a (C/g)x(kernel) dot
    # product per output channel.
    if deconv:
        macs = outer * math.prod(spatial_in) * channels * (p.num_output // p.group) * kernel
    else:
        macs = outer * math.prod(spatial_out) * p.num_output * (channels // p.group) * kernel
    macs *= len(bottoms)
    return LayerCost([top] * len(bottoms), param_count(layer, bottoms), macs)


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
    return LayerCost([_check_shape(shape[:axis] + (p.num_output,))], param_count(layer, bottoms),
                     m * k * p.num_output)


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
