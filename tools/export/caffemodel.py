"""Caffe weight files (.caffemodel, a binary NetParameter) with our schema: read them, write
them, check them against a network definition, and make random ones for tests and latency.

Weights are `{layer name: [blob arrays]}` in Caffe's blob order (conv: weight, bias;
BatchNorm: mean, variance, moving-average scale factor; Scale: gamma, beta).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from prototxt_gen import caffe_pb2
from tools.export.caffe_net import (CaffeNet, CaffeNetError, build_net, check_supported,
                                    load_net_param)
from dfseg.base.atomic import atomic_write_bytes
from dfseg.base.errors import InputError

Weights = dict[str, list[np.ndarray]]
MAX_RANDOM_PARAMS = 2**29


class CaffemodelError(InputError, ValueError):
    """A weight file that cannot be read or does not fit the network; names layer and blob."""


def _blob_array(blob: caffe_pb2.BlobProto, dtype=np.float32) -> tuple[np.ndarray, bool]:
    """(array, legacy) — legacy blobs carry num/channels/height/width instead of a shape."""
    if blob.HasField("shape"):
        shape, legacy = tuple(int(d) for d in blob.shape.dim), False
    else:
        shape, legacy = (blob.num, blob.channels, blob.height, blob.width), True
    values = blob.double_data if len(blob.double_data) else blob.data
    array = np.asarray(values, dtype=dtype)
    if array.size != math.prod(shape):
        raise CaffemodelError(f"blob holds {array.size} values for shape {shape}")
    return array.reshape(shape), legacy


def read_caffemodel(path: str | Path, dtype=np.float32) -> Weights:
    """Layer name → blobs, for every layer of the file that has blobs.

    `dtype` is the arrays' type: float32 like Caffe's nets, or float64 for arithmetic on the
    weights (tools.merge_bn) — `double_data` blobs then keep their full precision."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CaffemodelError(f"{path}: cannot read weights ({err.strerror})") from None
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(data)
    except DecodeError as err:
        raise CaffemodelError(f"{path}: not a caffemodel (binary NetParameter): {err}") from None
    weights: Weights = {}
    for layer in list(param.layer) + list(param.layers):  # V1 files keep them in `layers`
        if not layer.blobs:
            continue
        blobs = []
        for i, blob in enumerate(layer.blobs):
            try:
                array, legacy = _blob_array(blob, dtype)
            except CaffemodelError as err:
                raise CaffemodelError(f"{path}: layer {layer.name!r} blob {i}: {err}") from None
            blobs.append(_LegacyBlob(array) if legacy else array)
        weights[layer.name] = blobs
    return weights


class _LegacyBlob(np.ndarray):
    """A 4-D array read from a legacy (num, channels, height, width) blob: Caffe accepts it for
    any shape that, padded with leading 1s to 4-D, equals it."""

    def __new__(cls, array):
        return np.asarray(array).view(cls)


def write_caffemodel(path: str | Path, weights: Weights, net_name: str = "",
                     layer_types: dict[str, str] | None = None) -> None:
    """Write `weights` as a caffemodel Caffe's Net::CopyTrainedLayersFrom reads (layers in the
    dict's order; `layer_types` optionally records each layer's type, as Caffe's own files do).
    The file is replaced only once it is written in full."""
    atomic_write_bytes(path, caffemodel_bytes(weights, net_name, layer_types))


def caffemodel_bytes(weights: Weights, net_name: str = "",
                     layer_types: dict[str, str] | None = None) -> bytes:
    """The serialized caffemodel of :func:`write_caffemodel` (for writing it with a prototxt)."""
    param = caffe_pb2.NetParameter(name=net_name)
    for layer_name, blobs in weights.items():
        layer = param.layer.add(name=layer_name)
        if layer_types and layer_name in layer_types:
            layer.type = layer_types[layer_name]
        for array in blobs:
            array = np.asarray(array, dtype=np.float32)  # (ascontiguousarray makes 0-axis 1-axis)
            blob = layer.blobs.add()
            blob.shape.SetInParent()  # a 0-axis blob (PReLU's shared slope) still has a shape
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(array.ravel().tolist())
    return param.SerializeToString()


def fit_weights(net: CaffeNet, weights: Weights, source: str = "caffemodel") -> Weights:
    """The blobs each layer of `net` needs, taken from `weights` by layer name and checked like
    Caffe's CopyTrainedLayersFrom: right count, right shapes. Extra layers are ignored."""
    fitted: Weights = {}
    problems = []
    for layer in net.layers:
        expected = net.param_shapes[layer.name]
        if not expected:
            continue
        blobs = weights.get(layer.name)
        if blobs is None:
            problems.append(f"layer {layer.name!r} ({layer.type}): missing from {source}")
            continue
        if len(blobs) != len(expected):
            problems.append(f"layer {layer.name!r} ({layer.type}): {source} has {len(blobs)} "
                            f"blobs, the net needs {len(expected)}")
            continue
        fitted_blobs = []
        for i, (blob, shape) in enumerate(zip(blobs, expected)):
            if isinstance(blob, _LegacyBlob) and len(shape) <= 4:
                ok = blob.shape == (1,) * (4 - len(shape)) + tuple(shape)
            else:
                ok = tuple(blob.shape) == tuple(shape)
            if not ok:
                problems.append(f"layer {layer.name!r} ({layer.type}) blob {i}: {source} has "
                                f"shape {tuple(blob.shape)}, the net needs {tuple(shape)}")
                continue
            fitted_blobs.append(np.asarray(blob, dtype=np.float32).reshape(shape))
        fitted[layer.name] = fitted_blobs
    if problems:
        raise CaffemodelError("; ".join(problems))
    return fitted


def bilinear_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """Caffe's BilinearFiller: up-sampling weights for a (C, 1, K, K) deconvolution."""
    k_h, k_w = shape[-2:]
    out = np.empty(shape, dtype=np.float32)
    f = math.ceil(k_w / 2.0)
    c = (k_w - 1) / (2.0 * f)
    ys, xs = np.meshgrid(np.arange(k_h), np.arange(k_w), indexing="ij")
    out[...] = (1 - np.abs(xs / f - c)) * (1 - np.abs(ys / f - c))
    return out


def random_weights(net: CaffeNet, seed: int = 0) -> Weights:
    """Random parameters of realistic scale (He-initialised weights, BatchNorm statistics with
    moving-average factors other than 1, affine Scale) so activations neither vanish nor explode
    through deep nets; deconvolutions declared with a bilinear filler get the bilinear kernel."""
    total = sum(math.prod(s) for shapes in net.param_shapes.values() for s in shapes)
    if total > MAX_RANDOM_PARAMS:
        raise CaffemodelError(f"net {net.name!r} has {total:,} parameters: random weights for more "
                              f"than {MAX_RANDOM_PARAMS:,} (2 GiB of float32, ONNX's protobuf limit) "
                              "are refused (a width or kernel size typed wrong?)")
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for layer in net.layers:
        shapes = net.param_shapes[layer.name]
        if not shapes:
            continue
        blobs: list[np.ndarray] = []
        if layer.type == "BN":  # the forks' BN: PSPNet's slope, bias, mean, var; SegNet's 2
            c = shapes[0][1]
            pspnet = [rng.uniform(0.5, 1.5, c), rng.normal(0.0, 0.1, c),
                      rng.normal(0.0, 0.2, c), rng.uniform(0.5, 1.5, c)]
            blobs = [b.reshape(shapes[0]) for b in pspnet[:len(shapes)]]
        elif layer.type == "PReLU":
            blobs = [rng.uniform(0.05, 0.3, shapes[0])]
        elif layer.type == "BatchNorm":
            (c,), _, _ = shapes
            factor = np.float32(rng.uniform(0.5, 2.0))
            mean = rng.normal(0.0, 0.2, c) * factor
            var = rng.uniform(0.5, 1.5, c) * factor
            blobs = [mean, var, np.array([factor])]
        elif layer.type == "Scale":
            blobs = [rng.uniform(0.5, 1.5, shapes[0])]
            blobs += [rng.normal(0.0, 0.1, s) for s in shapes[1:]]
        else:
            weight_shape = shapes[0]
            filler = layer.convolution_param.weight_filler.type
            if layer.type == "Deconvolution" and filler == "bilinear":
                blobs = [bilinear_kernel(weight_shape)]
            else:
                if layer.type == "Deconvolution":
                    # each output sums (C_in / group) * (K / stride)^2 inputs
                    p = layer.convolution_param
                    strides = list(p.stride) or [1]
                    fan_in = (weight_shape[0] / p.group * math.prod(weight_shape[2:])
                              / max(strides) ** 2)
                elif layer.type == "InnerProduct" and layer.inner_product_param.transpose:
                    fan_in = weight_shape[0]
                else:
                    fan_in = math.prod(weight_shape[1:])
                blobs = [rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), weight_shape)]
            blobs += [rng.normal(0.0, 0.1, s) for s in shapes[1:]]
        weights[layer.name] = [np.asarray(b, dtype=np.float32) for b in blobs]
    return weights


__all__ = ["CaffemodelError", "CaffeNetError", "Weights", "read_caffemodel", "write_caffemodel",
           "fit_weights", "random_weights", "bilinear_kernel"]


def net_with_weights(net, weights: Weights | str | Path | None = None, input_shape=None, *,
                     seed: int = 0, supported=None, target: str = "export"
                     ) -> tuple[CaffeNet, Weights, str]:
    """(net, the blobs each layer needs, where they came from) for an exporter: `net` a
    prototxt path, NetParameter or CaffeNet (its layer types checked against `supported`);
    `weights` a caffemodel path, a {layer: [arrays]} dict, or None for `random_weights(seed)`."""
    if not isinstance(net, CaffeNet):
        param = load_net_param(net)
        if supported is not None:
            check_supported(param, supported, target)
        net = build_net(param, input_shape)
    source = "caffemodel"
    if weights is None:
        weights = random_weights(net, seed)
        source = "random weights"
    elif not isinstance(weights, dict):
        source = str(weights)
        weights = read_caffemodel(weights)
    return net, fit_weights(net, weights, source), source
