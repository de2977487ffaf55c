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


def convolution(name: str, bottom: str, top: str, num_output: int, kernel: int, stride: int = 1,
                pad: int | None = None, bias: bool = False, group: int = 1) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Convolution", [bottom], [top])
    p = layer.convolution_param
    p.num_output = num_output
    p.bias_term = bias
    p.pad.append(kernel // 2 if pad is None else pad)
    p.kernel_size.append(kernel)
    if group != 1:
        p.group = group
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


def scale(name: str, blob: str) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Scale", [blob], [blob])
    layer.scale_param.bias_term = True
    return layer


def relu(name: str, blob: str) -> caffe_pb2.LayerParameter:
    return _layer(name, "ReLU", [blob], [blob])


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


def interp(name: str, bottom: str, top: str, size: tuple[int, int],
           phase: int | None = None) -> caffe_pb2.LayerParameter:
    layer = _layer(name, "Interp", [bottom], [top], phase)
    layer.interp_param.height, layer.interp_param.width = size
    return layer


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
