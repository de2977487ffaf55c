"""The layer catalogue: what each Caffe layer type is to dfseg, in one place.

- its *kind*: ``DATA`` (reads a dataset or declares an input: its tops are the net's inputs),
  ``EVALUATION`` (scores against labels: Accuracy, Silence), ``LOSS`` (a training loss) or
  ``COMPUTE`` (everything an inference net runs);
- the shapes of its *parameter blobs*, in Caffe's blob order (Convolution: weight, bias;
  BatchNorm: mean, variance, moving-average factor; Scale: factor, bias ...), given the
  shapes of its bottoms: what a ``.caffemodel`` stores for it.

The shape rules count a layer's parameters from these shapes; the analysis, the exporters'
view of a net, the BatchNorm merge, the ``caffe time`` preparation and the training data ask
the kinds here.

A bottom dimension the caller does not know may be ``None``, and so may a whole bottom after
the first: a parameter dimension (or shape) that depends on it is then ``None`` too (the
BatchNorm merge checks a caffemodel against a prototxt whose input size only the data tells).
"""
from __future__ import annotations

import math
from typing import Callable

from .. import caffe_pb2
from .core import Shape, _check, canonical_axis
from .geometry import conv_geometry

__all__ = ["COMPUTE", "DATA", "DATA_TYPES", "EVALUATION", "EVALUATION_TYPES", "LOSS",
           "LOSS_TYPES", "bn_blob_count", "is_data_layer", "is_scoring_layer", "layer_kind",
           "param_count", "param_shapes", "type_kind"]

DATA, EVALUATION, LOSS, COMPUTE = "data", "evaluation", "loss", "compute"

#: Layers with no bottoms that produce the net's input blobs (a Python layer only when it has
#: no bottoms: see is_data_layer).  The forks' readers are here too (SegNet's DenseImageData,
#: SSD's AnnotatedData, DeepLab's ImageSegData).
DATA_TYPES = frozenset({
    "Input", "Data", "ImageData", "WindowData", "HDF5Data", "MemoryData", "DummyData",
    "AnnotatedData", "ImageSegData", "DenseImageData", "Python",
})
#: Layers that only score against labels: an inference graph leaves them out.
EVALUATION_TYPES = frozenset({"Accuracy", "Silence"})
#: The losses with a shape rule; any other type named ``...Loss`` is a loss too.
LOSS_TYPES = ("SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
              "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss")


def type_kind(layer_type: str) -> str:
    """The kind of a layer type (a Python layer counts as data here; see layer_kind)."""
    if layer_type in DATA_TYPES:
        return DATA
    if layer_type in EVALUATION_TYPES:
        return EVALUATION
    if layer_type in LOSS_TYPES or layer_type.endswith("Loss"):
        return LOSS
    return COMPUTE


def layer_kind(layer: caffe_pb2.LayerParameter) -> str:
    """The kind of one layer: a Python layer with bottoms computes, one without reads data."""
    if layer.type == "Python" and layer.bottom:
        return COMPUTE
    return type_kind(layer.type)


def is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """Does the layer produce input blobs (Input, ImageData, Data, a Python reader ...)?"""
    return layer_kind(layer) == DATA


def is_scoring_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """An evaluation or loss layer: what a deployed (inference) net does without."""
    return layer_kind(layer) in (EVALUATION, LOSS)


# --------------------------------------------------------------------------- parameter blobs

def _div(a: int | None, b: int) -> int | None:
    return None if a is None else a // b


def _conv_params(layer, bottoms, deconv: bool) -> list[Shape]:
    p = layer.convolution_param
    shape = bottoms[0]
    channel_axis = canonical_axis(p.axis, len(shape))
    g = conv_geometry(p, len(shape) - channel_axis - 1)
    _check(p.group > 0, "group must be positive")
    channels = shape[channel_axis]
    if deconv:
        weight = (channels, p.num_output // p.group) + g.kernel
    else:
        weight = (p.num_output, _div(channels, p.group)) + g.kernel
    return [weight] + ([(p.num_output,)] if p.bias_term else [])


def _inner_product_params(layer, bottoms) -> list[Shape]:
    p = layer.inner_product_param
    shape = bottoms[0]
    spanned = shape[canonical_axis(p.axis, len(shape)):]
    k = None if None in spanned else math.prod(spanned)
    weight = (k, p.num_output) if p.transpose else (p.num_output, k)
    return [weight] + ([(p.num_output,)] if p.bias_term else [])


def _channels(shape: Shape) -> int | None:
    return shape[1] if len(shape) > 1 else 1


def _batch_norm_params(layer, bottoms) -> list[Shape]:
    c = _channels(bottoms[0])
    return [(c,), (c,), (1,)]  # mean, variance, moving-average factor


def bn_blob_count(p: caffe_pb2.BNParameter) -> int:
    """Parameter blobs (each 1 x C x 1 x 1) of a fork's BN layer: the SegNet fork's scale and
    shift, when bn_param uses its field names (scale_filler, shift_filler, bn_mode); else the
    PSPNet fork's slope, bias, mean and variance."""
    segnet = any(p.HasField(name) for name in ("scale_filler", "shift_filler", "bn_mode"))
    return 2 if segnet else 4


def _channel_axis(shape: Shape) -> int | None:
    _check(len(shape) >= 2, "number of axes of bottom blob must be >=2")
    return shape[1]


def _fork_bn_params(layer, bottoms) -> list[Shape]:
    return [(1, _channel_axis(bottoms[0]), 1, 1)] * bn_blob_count(layer.bn_param)


def affine_shape(shape: Shape, axis: int, num_axes: int) -> Shape:
    """The part of ``shape`` a Scale/Bias factor covers (``num_axes`` -1: to the end)."""
    axis = canonical_axis(axis, len(shape)) if shape else 0
    _check(num_axes >= -1, "num_axes must be non-negative, or -1 to extend to the end of bottom[0]")
    if num_axes >= 0:
        _check(len(shape) >= axis + num_axes, "scale blob's shape extends past bottom[0]'s shape")
    return tuple(shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes])


def _scale_params(layer, bottoms) -> list[Shape]:
    p = layer.scale_param
    if len(bottoms) > 1:  # the factor is bottom 1; only a bias (of its shape) is a parameter
        return [bottoms[1]] if p.bias_term else []
    factor = affine_shape(bottoms[0], p.axis, p.num_axes)
    return [factor] + ([factor] if p.bias_term else [])


def _bias_params(layer, bottoms) -> list[Shape]:
    p = layer.bias_param
    return [] if len(bottoms) > 1 else [affine_shape(bottoms[0], p.axis, p.num_axes)]


def _prelu_params(layer, bottoms) -> list[Shape]:
    # Caffe's channel-shared slope is a 0-axis blob (one value).
    return [()] if layer.prelu_param.channel_shared else [(_channel_axis(bottoms[0]),)]


_PARAM_SHAPES: dict[str, Callable[[caffe_pb2.LayerParameter, list[Shape]], list[Shape]]] = {
    "Convolution": lambda layer, bottoms: _conv_params(layer, bottoms, deconv=False),
    "Deconvolution": lambda layer, bottoms: _conv_params(layer, bottoms, deconv=True),
    "InnerProduct": _inner_product_params,
    "BatchNorm": _batch_norm_params,
    "BN": _fork_bn_params,
    "Scale": _scale_params,
    "Bias": _bias_params,
    "PReLU": _prelu_params,
}


def param_shapes(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    """The shapes of the layer's parameter blobs, in Caffe's order, for these bottom shapes
    (none for a layer without parameters); ShapeError where the layer's settings are invalid."""
    shapes_of = _PARAM_SHAPES.get(layer.type)
    return shapes_of(layer, [None if b is None else tuple(b) for b in bottoms]) if shapes_of else []


def param_count(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> int:
    """Every element of the layer's parameter blobs: what a caffemodel stores for it."""
    return sum(math.prod(shape) for shape in param_shapes(layer, bottoms))
