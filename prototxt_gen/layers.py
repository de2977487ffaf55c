"""Constructors for single Caffe layers as ``caffe_pb2.LayerParameter`` messages.

Each function returns one message with the fields the authors' release writes, in the
release's style (e.g. ``pad``/``stride`` always explicit on convolutions).  Composition into
blocks and networks happens in :mod:`prototxt_gen.netbuilder` and above.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from . import caffe_pb2

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

# BatchNorm settings of every BN layer in the release.
BN_MOVING_AVERAGE_FRACTION = 0.9
BN_EPS = 1e-4


def _layer(name: str, type_: str, bottoms: Iterable[str], tops: Iterable[str],
           phase: int | None = None) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name=name, type=type_)
    layer.bottom.extend(bottoms)
    layer.top.extend(tops)
    if phase is not None:
        layer.include.add(phase=phase)
    return layer


def _set_hw(param, field: str, hw: tuple[int, int]) -> None:
    """Square sizes as ``kernel_size``/``stride``; rectangular ones as ``_h``/``_w``."""
    h, w = hw
    if h == w:
        value = getattr(param, field)
        if hasattr(value, "append"):
            value.append(h)
        else:
            setattr(param, field, h)
    else:
        base = field.replace("_size", "")
        setattr(param, f"{base}_h", h)
        setattr(param, f"{base}_w", w)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def convolution(name: str, bottom: str, top: str, num_output: int, kernel: int | tuple[int, int],
                stride: int = 1, pad: int | tuple[int, int] | None = None, bias: bool = False,
                group: int = 1, dilation: int = 1) -> caffe_pb2.LayerParameter:
    """``kernel``/``pad`` are an int or (h, w) (asymmetric kernels as kernel_h/_w); ``pad``
    defaults to "same" for odd kernels: dilation * (kernel // 2) on each axis."""
    layer = _layer(name, "Convolution", [bottom], [top])
    p = layer.convolution_param
    p.num_output = num_output
    p.bias_term = bias
    kh, kw = _pair(kernel)
    ph, pw = (dilation * (kh // 2), dilation * (kw // 2)) if pad is None else _pair(pad)
    if kh == kw and ph == pw:
        p.pad.append(ph)
        p.kernel_size.append(kh)
    else:
        p.pad_h, p.pad_w = ph, pw
        p.kernel_h, p.kernel_w = kh, kw
    if group != 1:
        p.group = group
    p.stride.append(stride)
    if dilation != 1:
        p.dilation.append(dilation)
    return layer


def deconvolution(name: str, bottom: str, top: str, num_output: int, kernel: int, stride: int,
                  pad: int = 0, bias: bool = False) -> caffe_pb2.LayerParameter:
    """A learned up-sampling: output (in - 1) * stride + kernel - 2 * pad on each axis."""
    layer = _layer(name, "Deconvolution", [bottom], [top])
    p = layer.convolution_param
    p.num_output = num_output
    p.bias_term = bias
    p.pad.append(pad)
    p.kernel_size.append(kernel)
    p.stride.append(stride)
    return layer


def bilinear_upsample(name: str, bottom: str, top: str, channels: int, factor: int) -> caffe_pb2.LayerParameter:
    """Fixed (lr 0) grouped deconvolution with a bilinear filler: the release's x2 / x8 up-sampling."""
    layer = _layer(name, "Deconvolution", [bottom], [top])
    layer.param.add(lr_mult=0, decay_mult=0)
    p = layer.convolution_param
    p.num_output = channels
    p.bias_term = False
    p.pad.append(factor // 2)
    p.kernel_size.append(2 * factor)
    p.group = channels
    p.stride.append(factor)
    p.weight_filler.type = "bilinear"
    return layer


def batch_norm(name: str, bottom: str, top: str) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "BatchNorm", [bottom], [top])
    layer.batch_norm_param.moving_average_fraction = BN_MOVING_AVERAGE_FRACTION
    layer.batch_norm_param.eps = BN_EPS
    return layer


def scale(name: str, blob: str, top: str | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Scale", [blob], [top or blob])
    layer.scale_param.bias_term = True
    return layer


def relu(name: str, blob: str) -> caffe_pb2.LayerParameter:
    return activation("ReLU", name, blob)


def eltwise_sum(name: str, bottoms: Sequence[str], top: str) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Eltwise", bottoms, [top])
    layer.eltwise_param.operation = caffe_pb2.EltwiseParameter.SUM
    return layer


def concat(name: str, bottoms: Sequence[str], top: str) -> caffe_pb2.LayerParameter:
    return _layer(name, "Concat", bottoms, [top])


def ave_pooling(name: str, bottom: str, top: str, kernel: tuple[int, int],
                stride: tuple[int, int]) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Pooling", [bottom], [top])
    p = layer.pooling_param
    p.pool = caffe_pb2.PoolingParameter.AVE
    _set_hw(p, "kernel_size", kernel)
    _set_hw(p, "stride", stride)
    return layer


def max_pooling(name: str, bottom: str, tops: str | Sequence[str], kernel: int, stride: int,
                pad: int = 0) -> caffe_pb2.LayerParameter:
    """MAX pooling; a second top receives the pooling mask (the argmax indices) that
    max-unpooling (``Upsample``) reads."""
    layer = _layer(name, "Pooling", [bottom], [tops] if isinstance(tops, str) else tops)
    p = layer.pooling_param
    p.pool = caffe_pb2.PoolingParameter.MAX
    p.kernel_size = kernel
    p.stride = stride
    if pad:
        p.pad = pad
    return layer


def global_ave_pooling(name: str, bottom: str, top: str) -> caffe_pb2.LayerParameter:
    """Average over the whole feature map, whatever its size."""
    layer = _layer(name, "Pooling", [bottom], [top])
    layer.pooling_param.pool = caffe_pb2.PoolingParameter.AVE
    layer.pooling_param.global_pooling = True
    return layer


def upsample(name: str, bottom: str, mask: str, top: str, size: tuple[int, int] | None = None,
             scale: int = 2) -> caffe_pb2.LayerParameter:
    """Max-unpooling (SegNet / ENet ``Upsample``): each value goes back to the position its
    MAX pooling took it from.  ``size`` (H, W) is given where ``scale`` x input is not the
    pooled map's size (odd sizes)."""
    layer = _layer(name, "Upsample", [bottom, mask], [top])
    layer.upsample_param.scale = scale
    if size is not None:
        layer.upsample_param.upsample_h, layer.upsample_param.upsample_w = size
    return layer


def interp(name: str, bottom: str, top: str, size: tuple[int, int],
           phase: int | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Interp", [bottom], [top], phase)
    layer.interp_param.height, layer.interp_param.width = size
    return layer


def crop(name: str, bottom: str, reference: str, top: str, offset: int) -> caffe_pb2.LayerParameter:
    """Cut H and W of ``bottom`` to those of ``reference``, starting ``offset`` in."""
    layer = _layer(name, "Crop", [bottom, reference], [top])
    layer.crop_param.axis = 2
    layer.crop_param.offset.append(offset)
    return layer


def slice_channels(name: str, bottom: str, tops: Sequence[str], points: Sequence[int]) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Slice", [bottom], tops)
    layer.slice_param.axis = 1
    layer.slice_param.slice_point.extend(points)
    return layer


def shuffle_channel(name: str, bottom: str, top: str, group: int) -> caffe_pb2.LayerParameter:
    """ShuffleNet's channel shuffle: (g, C/g) channels transposed to (C/g, g)."""
    layer = _layer(name, "ShuffleChannel", [bottom], [top])
    layer.shuffle_channel_param.group = group
    return layer


def zeros_like(name: str, bottom: str, top: str) -> caffe_pb2.LayerParameter:
    """0 * x: a zero blob of ``bottom``'s shape (ENet pads channels with zeros)."""
    layer = _layer(name, "Power", [bottom], [top])
    layer.power_param.scale = 0.0
    return layer


def lrn(name: str, bottom: str, top: str, local_size: int, alpha: float, beta: float) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "LRN", [bottom], [top])
    layer.lrn_param.local_size = local_size
    layer.lrn_param.alpha = alpha
    layer.lrn_param.beta = beta
    return layer


def activation(kind: str, name: str, blob: str) -> caffe_pb2.LayerParameter:
    """An in-place ReLU or (per-channel) PReLU."""
    if kind not in ("ReLU", "PReLU"):
        raise ValueError(f"unknown activation {kind!r} (ReLU or PReLU)")
    return _layer(name, kind, [blob], [blob])


def inner_product(name: str, bottom: str, top: str, num_output: int) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "InnerProduct", [bottom], [top])
    layer.inner_product_param.num_output = num_output
    layer.inner_product_param.bias_term = True
    return layer


def softmax(name: str, bottom: str, top: str, phase: int | None = None) -> caffe_pb2.LayerParameter:
    return _layer(name, "Softmax", [bottom], [top], phase)


def argmax(name: str, bottom: str, top: str, phase: int | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "ArgMax", [bottom], [top], phase)
    layer.argmax_param.axis = 1
    return layer


def accuracy(name: str, bottoms: Sequence[str], top: str, top_k: int = 1, phase: int | None = None,
             ignore_label: int | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Accuracy", bottoms, [top], phase)
    layer.accuracy_param.top_k = top_k
    if ignore_label is not None:
        layer.accuracy_param.ignore_label = ignore_label
    return layer


def softmax_loss(name: str, bottoms: Sequence[str], top: str, loss_weight: float = 1.0,
                 ignore_label: int | None = None, phase: int | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "SoftmaxWithLoss", bottoms, [top], phase)
    if loss_weight != 1.0:
        layer.loss_weight.append(loss_weight)
    if ignore_label is not None:
        layer.loss_param.ignore_label = ignore_label
        layer.loss_param.normalization = caffe_pb2.LossParameter.VALID
    return layer


def input_layer(shape: Sequence[int], name: str = "input", top: str = "data") -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Input", [], [top])
    layer.input_param.shape.add(dim=list(shape))
    return layer
