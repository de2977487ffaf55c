"""Caffe's layer semantics in plain PyTorch: the few layers whose arithmetic torch.nn does not
spell the same way (ceil-mode pooling with Caffe's last-window clip, PSPNet's Interp, the
argmax tie rule, Reshape's 0/-1 dims, ...).

This module imports nothing but the standard library and torch: `tools.to_torch` copies the
helpers a net needs, verbatim, into the module it writes, so the generated code needs no
dfseg at run time.  Every helper works out sizes from its input at run time as Caffe's
Reshape() does, so a generated module runs at any input size Caffe would accept, and
torch.export / torch.compile can trace it (the sizes are Python ints).  Keep it that way:
no import beyond these; a helper that calls another is copied with it (the converter reads
this file's text and follows the names each top-level function or class uses).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """PoolingLayer::Reshape for one axis: ceil (or floor) rounding, then a last window that
    would start in the end padding is dropped."""
    span = size + 2 * pad - kernel
    pooled = (-(-span // stride) if ceil else span // stride) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


class CaffePool2d(nn.Module):
    """Caffe's MAX / AVE Pooling: windows clipped to the input (MAX) or to the padded input
    (AVE's divisor), ceil rounding by default.  torch's own pooling computes exactly this
    whenever its output size agrees with Caffe's and the pad is at most half the kernel;
    otherwise the input is padded explicitly and the extra windows cut off.  With
    `return_mask` a MAX pooling also returns Caffe's mask top: each maximum's index within
    its input plane (y * W + x), as int64."""

    def __init__(self, method: str, kernel_size=1, stride=1, padding=0, ceil_mode: bool = True,
                 global_pooling: bool = False, return_mask: bool = False):
        super().__init__()
        self.method, self.global_pooling, self.return_mask = method, global_pooling, return_mask
        self.kernel_size, self.stride, self.padding = (
            tuple(v) if isinstance(v, (tuple, list)) else (v, v)
            for v in (kernel_size, stride, padding))
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        if self.global_pooling:
            return f"{self.method}, global"
        return (f"{self.method}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, ceil_mode={self.ceil_mode}")

    def forward(self, x):
        if self.global_pooling and not self.return_mask:
            return x.amax((2, 3), keepdim=True) if self.method == "max" else \
                x.mean((2, 3), keepdim=True)
        kernel = tuple(x.shape[2:]) if self.global_pooling else self.kernel_size
        if all(2 * p <= k for p, k in zip(self.padding, kernel)):
            # torch's sizes are Caffe's (the same ceil rule and clip of a last window that
            # starts in the padding); it only refuses pads over half the kernel.
            if self.method == "max":
                return F.max_pool2d(x, kernel, self.stride, self.padding,
                                    ceil_mode=self.ceil_mode, return_indices=self.return_mask)
            return F.avg_pool2d(x, kernel, self.stride, self.padding, ceil_mode=self.ceil_mode,
                                count_include_pad=True)
        if self.return_mask:
            raise ValueError("a pooling mask needs a pad of at most half the kernel")
        out = tuple(caffe_pool_size(s, k, st, p, self.ceil_mode) for s, k, st, p in
                    zip(x.shape[2:], kernel, self.stride, self.padding))
        if self.method == "max":
            pads = _end_pads(x.shape[2:], kernel, self.stride, self.padding, out)
            padded = F.pad(x, pads, value=-math.inf)
            return F.max_pool2d(padded, kernel, self.stride)[:, :, :out[0], :out[1]]
        # AVE's divisor counts the padding but not what lies past it: pad explicitly, let
        # torch's ceil mode clip the divisor to the padded input, cut Caffe's windows out.
        ph, pw = self.padding
        padded = F.pad(x, (pw, pw, ph, ph))
        pooled = F.avg_pool2d(padded, kernel, self.stride, ceil_mode=True,
                              count_include_pad=True)
        return pooled[:, :, :out[0], :out[1]]


def _end_pads(size, kernel, stride, pad, out):
    """F.pad widths (left, right, top, bottom) that hold every one of Caffe's windows."""
    ends = [max((o - 1) * st + k - p - s, 0) for s, k, st, p, o in
            zip(size, kernel, stride, pad, out)]
    return (pad[1], ends[1], pad[0], ends[0])


class Interp(nn.Module):
    """PSPNet's Interp layer: the input cropped by -pad_beg / -pad_end, then bilinearly
    resized with aligned corners (Caffe's caffe_cpu_interp2) to a fixed height/width or to a
    size from shrink_factor / zoom_factor, worked out as InterpLayer::Reshape does."""

    def __init__(self, height: int = 0, width: int = 0, zoom_factor: int = 0,
                 shrink_factor: int = 0, pad_beg: int = 0, pad_end: int = 0):
        super().__init__()
        self.height, self.width = height, width
        self.zoom_factor, self.shrink_factor = zoom_factor, shrink_factor
        self.pad_beg, self.pad_end = pad_beg, pad_end

    def extra_repr(self) -> str:
        fields = ("height", "width", "zoom_factor", "shrink_factor", "pad_beg", "pad_end")
        return ", ".join(f"{f}={getattr(self, f)}" for f in fields if getattr(self, f))

    def output_size(self, size: int, target: int) -> int:
        size += self.pad_beg + self.pad_end
        if self.shrink_factor and not self.zoom_factor:
            return (size - 1) // self.shrink_factor + 1
        if self.zoom_factor and not self.shrink_factor:
            return size + (size - 1) * (self.zoom_factor - 1)
        if target:
            return target
        size = (size - 1) // self.shrink_factor + 1
        return size + (size - 1) * (self.zoom_factor - 1)

    def forward(self, x):
        height, width = x.shape[2:]
        out = (self.output_size(height, self.height), self.output_size(width, self.width))
        begin, end = -self.pad_beg, -self.pad_end
        if begin or end:
            x = x[:, :, begin:height - end, begin:width - end]
        return F.interpolate(x, size=out, mode="bilinear", align_corners=True)


class Scale(nn.Module):
    """Caffe's Scale layer: x times a factor covering axes [axis, axis + factor.dim()) (its
    own `weight`, or a second input), plus an optional `bias`."""

    def __init__(self, shape=(), axis: int = 1, bias: bool = True, learned: bool = True):
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.ones(shape)) if learned else None
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape) if self.weight is not None else "from input"
        return f"factor {shape} at axis {self.axis}, bias={self.bias is not None}"

    def forward(self, x, factor=None):
        factor = self.weight if factor is None else factor
        trailing = (1,) * (x.dim() - self.axis - factor.dim())
        x = x * factor.reshape(tuple(factor.shape) + trailing)
        if self.bias is not None:
            x = x + self.bias.reshape(tuple(self.bias.shape) + trailing)
        return x


def caffe_argmax(x, axis=None, out_max_val: bool = False):
    """Caffe's ArgMax (top_k 1): ties go to the last index (Caffe sorts (value, index) pairs
    descending); the index comes out as a float blob.  Without an axis each sample is
    flattened and the result is (N, 1, 1[, 1 ...]), as Caffe shapes it."""
    if axis is None:
        shape = (x.shape[0],) + (1,) * (max(3, x.dim()) - 1)
        return caffe_argmax(x.flatten(1), 1).reshape(shape)
    if out_max_val:
        return x.amax(axis, keepdim=True)
    last = x.flip(axis).argmax(axis, keepdim=True)
    return (x.shape[axis] - 1 - last).to(x.dtype)


def caffe_power(x, power: float = 1.0, scale: float = 1.0, shift: float = 0.0):
    """Caffe's Power layer: (shift + scale * x) ^ power."""
    if scale != 1.0:
        x = x * scale
    if shift != 0.0:
        x = x + shift
    if power != 1.0:
        x = x ** power
    return x


def caffe_lrn_within_channel(x, size: int, alpha: float, beta: float):
    """LRN over a size x size window of each channel, as Caffe composes it (pooling, power):
    x * (1 + alpha * mean of x^2 over the zero-padded window) ^ -beta."""
    pad = (size - 1) // 2
    mean = F.avg_pool2d(x * x, size, 1, pad, count_include_pad=True)
    return x * (1 + alpha * mean) ** -beta


def caffe_reshape(x, dims, axis: int = 0, num_axes: int = -1):
    """Caffe's Reshape: axes [axis, axis + num_axes) replaced by `dims`, where 0 copies the
    input's dimension and -1 takes what is left."""
    axis = axis % (x.dim() + 1) if axis < 0 else axis
    end = x.dim() if num_axes == -1 else axis + num_axes
    middle = [x.shape[axis + i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(tuple(x.shape[:axis]) + tuple(middle) + tuple(x.shape[end:]))


def caffe_crop(x, reference, axis: int, offsets):
    """Caffe's Crop: x cut to `reference`'s size from `axis` on, starting at `offsets` (one
    for every cropped axis, or one for all)."""
    axis = axis % x.dim()
    for i in range(axis, x.dim()):
        offset = offsets[0] if len(offsets) == 1 else (offsets[i - axis] if offsets else 0)
        x = x.narrow(i, offset, reference.shape[i])
    return x


def caffe_slice(x, axis: int, points, count: int):
    """Caffe's Slice into `count` tops: at `points`, or into equal parts."""
    size = x.shape[axis]
    bounds = [0, *points, size] if points else [size * i // count for i in range(count + 1)]
    return torch.split(x, [b - a for a, b in zip(bounds, bounds[1:])], dim=axis)


def shuffle_channel(x, groups: int):
    """ShuffleNet's ShuffleChannel: (N, G, C/G, ...) with axes 1 and 2 swapped."""
    n, c = x.shape[:2]
    grouped = x.reshape((n, groups, c // groups) + tuple(x.shape[2:]))
    return grouped.transpose(1, 2).reshape(x.shape)


def max_unpool(x, mask, scale, size=(0, 0), pad_out=(0, 0)):
    """SegNet's Upsample: each value goes to the index its pooling mask gives within an output
    plane of `size` (an axis of 0: the input's times `scale`, less `pad_out`)."""
    n, c, h, w = x.shape
    out = tuple(fixed or s * k - p for fixed, s, k, p in zip(size, (h, w), scale, pad_out))
    flat = x.new_zeros((n, c, out[0] * out[1]))
    flat.scatter_(2, mask.reshape(n, c, h * w).long(), x.reshape(n, c, h * w))
    return flat.reshape((n, c) + out)
