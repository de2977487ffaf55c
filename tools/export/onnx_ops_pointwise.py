"""ONNX nodes for Caffe's per-element, per-channel and channel-routing layers: BatchNorm, the
forks' BN, Scale, Eltwise, Power, ReLU / PReLU / Sigmoid / TanH, Softmax, ArgMax, Concat,
Slice, ShuffleChannel, Flatten, Reshape, Dropout and Split (same contract as onnx_ops)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from prototxt_gen import caffe_pb2, shapes
from tools.export.caffe_net import argmax_axis, concat_axis, scale_span
from tools.export.onnx_graph import Graph, UnsupportedLayerError, broadcast, per_channel


def export_batchnorm(g: Graph, layer, blobs, in_shape):
    p = layer.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise UnsupportedLayerError(f"layer {layer.name!r}: BatchNorm with use_global_stats: "
                                    f"false normalises by batch statistics; not exportable")
    stored = float(blobs[2].reshape(-1)[0])
    factor = 0.0 if stored == 0 else 1.0 / stored  # Caffe zeroes the statistics for a 0 factor
    mean = (blobs[0] * np.float32(factor)).astype(np.float32)
    var = (blobs[1] * np.float32(factor)).astype(np.float32)
    c = in_shape[1]
    g.node("BatchNormalization",
           [g.bottom(layer.bottom[0]), g.const(layer.name + "/one", np.ones(c)),
            g.const(layer.name + "/zero", np.zeros(c)), g.const(layer.name + "/mean", mean),
            g.const(layer.name + "/var", var)],
           [g.top(layer.top[0], layer.name)], layer.name, epsilon=float(p.eps))


def export_fork_bn(g: Graph, layer, blobs, in_shape):
    """PSPNet's BN (slope, bias, mean, variance; TEST and frozen use the stored statistics):
    slope * (x - mean) / sqrt(var + eps) + bias. SegNet's BN in INFERENCE mode (scale, shift,
    statistics already folded in): scale * x + shift; its LEARN mode uses batch statistics in
    every phase and has no fixed-weight equivalent."""
    p = layer.bn_param
    x = g.bottom(layer.bottom[0])
    top = g.top(layer.top[0], layer.name)
    if shapes.bn_blob_count(p) == 4:
        slope, bias, mean, var = (np.asarray(b, np.float32).reshape(-1) for b in blobs)
        g.node("BatchNormalization",
               [x, g.const(layer.name + "/slope", slope), g.const(layer.name + "/bias", bias),
                g.const(layer.name + "/mean", mean), g.const(layer.name + "/var", var)],
               [top], layer.name, epsilon=float(p.eps))
        return
    if p.bn_mode != caffe_pb2.BNParameter.INFERENCE:
        raise UnsupportedLayerError(f"layer {layer.name!r}: SegNet BN with bn_mode LEARN "
                                    f"normalises by batch statistics; not exportable (run "
                                    f"SegNet's compute_bn_statistics and use bn_mode: INFERENCE)")
    scaled = g.temp(layer.name + "/scaled")
    g.node("Mul", [x, g.const(layer.name + "/scale", per_channel(blobs[0], len(in_shape)))],
           [scaled], layer.name)
    g.node("Add", [scaled, g.const(layer.name + "/shift", per_channel(blobs[1], len(in_shape)))],
           [top], layer.name + "/shift")


def export_scale(g: Graph, layer, blobs, in_shape):
    axis, num_axes = scale_span(layer, in_shape)
    ndim = len(in_shape)
    x = g.bottom(layer.bottom[0])
    bias = layer.scale_param.bias_term
    if len(layer.bottom) == 2:
        factor_shape = g.net.bottom_shapes[layer.name][1]
        factor = g.temp(layer.name + "/factor")
        g.node("Reshape", [g.bottom(layer.bottom[1]),
                           g.const(layer.name + "/shape",
                                   list(factor_shape) + [1] * (ndim - axis - len(factor_shape)),
                                   np.int64)], [factor], layer.name + "/factor")
        bias_blob = blobs[0] if bias else None
    else:
        factor = g.const(layer.name + "/gamma", broadcast(blobs[0], axis, ndim))
        bias_blob = blobs[1] if bias else None
    top = g.top(layer.top[0], layer.name)
    if bias_blob is None:
        g.node("Mul", [x, factor], [top], layer.name)
        return
    scaled = g.temp(layer.name + "/scaled")
    g.node("Mul", [x, factor], [scaled], layer.name)
    g.node("Add", [scaled, g.const(layer.name + "/beta", broadcast(bias_blob, axis, ndim))],
           [top], layer.name + "/bias")


def export_eltwise(g: Graph, layer, blobs, in_shape):
    p = layer.eltwise_param
    xs = [g.bottom(b) for b in layer.bottom]
    top = g.top(layer.top[0], layer.name)
    op = p.operation
    if op == caffe_pb2.EltwiseParameter.SUM:
        coeffs = list(p.coeff) or [1.0] * len(xs)
        terms = []
        for i, (x, c) in enumerate(zip(xs, coeffs)):
            if c == 1.0:
                terms.append(x)
                continue
            t = g.temp(f"{layer.name}/term{i}")
            g.node("Mul", [x, g.const(f"{layer.name}/coeff{i}", np.float32(c))], [t],
                   f"{layer.name}/coeff{i}")
            terms.append(t)
        g.node("Sum", terms, [top], layer.name)
    elif op == caffe_pb2.EltwiseParameter.MAX:
        g.node("Max", xs, [top], layer.name)
    else:  # PROD
        acc = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            out = top if i == len(xs) - 1 else g.temp(f"{layer.name}/prod{i}")
            g.node("Mul", [acc, x], [out], layer.name if out == top else f"{layer.name}/prod{i}")
            acc = out


def export_power(g: Graph, layer, blobs, in_shape):
    """(shift + scale * x) ^ power, each step only where it changes something."""
    p = layer.power_param
    x = g.bottom(layer.bottom[0])
    steps = []
    if p.scale != 1:
        steps.append(("Mul", "scale", p.scale))
    if p.shift != 0:
        steps.append(("Add", "shift", p.shift))
    if p.power != 1:
        steps.append(("Pow", "power", p.power))
    top = g.top(layer.top[0], layer.name)
    if not steps:
        g.node("Identity", [x], [top], layer.name)
    for i, (op, what, value) in enumerate(steps):
        out = top if i == len(steps) - 1 else g.temp(f"{layer.name}/{what}")
        g.node(op, [x, g.const(f"{layer.name}/{what}", np.float32(value))], [out],
               layer.name if out == top else f"{layer.name}/{what}")
        x = out


def export_prelu(g: Graph, layer, blobs, in_shape):
    slope = np.asarray(blobs[0], np.float32)
    slope = slope.reshape(1) if slope.size == 1 else per_channel(slope, len(in_shape))
    g.node("PRelu", [g.bottom(layer.bottom[0]), g.const(layer.name + "/slope", slope)],
           [g.top(layer.top[0], layer.name)], layer.name)


def export_argmax(g: Graph, layer, blobs, in_shape):
    p = layer.argmax_param
    axis = argmax_axis(layer, len(in_shape))
    x = g.bottom(layer.bottom[0])
    if p.top_k != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r}: ArgMax with top_k {p.top_k} is not "
                                    f"supported (only top_k 1)")
    if axis is None:
        if p.out_max_val:
            raise UnsupportedLayerError(f"layer {layer.name!r}: ArgMax out_max_val without axis "
                                        f"is not supported")
        flat = g.temp(layer.name + "/flatten")
        g.node("Flatten", [x], [flat], layer.name + "/flatten", axis=1)
        x, axis = flat, 1
    top = g.top(layer.top[0], layer.name)
    out_shape = list(g.net.blob_shapes[layer.top[0]])
    if p.out_max_val:
        g.node("ReduceMax", [x], [top], layer.name, axes=[axis], keepdims=1)
        return
    index = g.temp(layer.name + "/index")
    g.node("ArgMax", [x], [index], layer.name, axis=axis, keepdims=1, select_last_index=1)
    if argmax_axis(layer, len(in_shape)) is None:
        as_float = g.temp(layer.name + "/float")
        g.node("Cast", [index], [as_float], layer.name + "/cast", to=TensorProto.FLOAT)
        g.node("Reshape", [as_float, g.const(layer.name + "/shape", out_shape, np.int64)], [top],
               layer.name + "/reshape")
    else:
        g.node("Cast", [index], [top], layer.name + "/cast", to=TensorProto.FLOAT)


def export_slice(g: Graph, layer, blobs, in_shape):
    axis = shapes.legacy_axis(layer.slice_param, "slice_dim", len(in_shape))
    sizes = [g.net.blob_shapes[t][axis] for t in layer.top]
    tops = [g.top(t, layer.name) for t in layer.top]
    g.node("Split", [g.bottom(layer.bottom[0]), g.const(layer.name + "/split", sizes, np.int64)],
           tops, layer.name, axis=axis)


def export_shuffle_channel(g: Graph, layer, blobs, in_shape):
    """Our ShuffleChannel layer: (N, G, C/G, rest) -> swap axes 1, 2 -> (N, C, ...)."""
    n, c = in_shape[:2]
    group = int(layer.shuffle_channel_param.group)
    grouped, swapped = g.temp(layer.name + "/grouped"), g.temp(layer.name + "/swapped")
    g.node("Reshape", [g.bottom(layer.bottom[0]),
                       g.const(layer.name + "/groups", [n, group, c // group, -1], np.int64)],
           [grouped], layer.name + "/grouped")
    g.node("Transpose", [grouped], [swapped], layer.name, perm=[0, 2, 1, 3])
    g.node("Reshape", [swapped, g.const(layer.name + "/shape", list(in_shape), np.int64)],
           [g.top(layer.top[0], layer.name)], layer.name + "/shape")


def export_simple(g: Graph, layer, blobs, in_shape):
    kind = layer.type
    x = g.bottom(layer.bottom[0])
    if kind == "ReLU":
        slope = layer.relu_param.negative_slope
        top = g.top(layer.top[0], layer.name)
        if slope:
            g.node("LeakyRelu", [x], [top], layer.name, alpha=float(slope))
        else:
            g.node("Relu", [x], [top], layer.name)
    elif kind in ("Sigmoid", "TanH"):
        g.node("Sigmoid" if kind == "Sigmoid" else "Tanh", [x], [g.top(layer.top[0], layer.name)],
               layer.name)
    elif kind == "Softmax":
        axis = layer.softmax_param.axis % len(in_shape)
        g.node("Softmax", [x], [g.top(layer.top[0], layer.name)], layer.name, axis=axis)
    elif kind in ("Dropout", "Split"):  # Caffe's Dropout scales at training time only
        for i, top in enumerate(layer.top):
            g.node("Identity", [x], [g.top(top, layer.name)],
                   layer.name if len(layer.top) == 1 else f"{layer.name}/{i}")
    elif kind == "Concat":
        axis = concat_axis(layer, len(in_shape))
        g.node("Concat", [g.bottom(b) for b in layer.bottom], [g.top(layer.top[0], layer.name)],
               layer.name, axis=axis)
    elif kind in ("Flatten", "Reshape"):
        out_shape = g.net.blob_shapes[layer.top[0]]
        g.node("Reshape", [x, g.const(layer.name + "/shape", list(out_shape), np.int64)],
               [g.top(layer.top[0], layer.name)], layer.name)
    else:  # pragma: no cover - guarded by the exporter table
        raise UnsupportedLayerError(f"layer {layer.name!r}: unsupported type {kind!r}")


EXPORTERS = {
    "BatchNorm": export_batchnorm,
    "BN": export_fork_bn,
    "Scale": export_scale,
    "Eltwise": export_eltwise,
    "Power": export_power,
    "PReLU": export_prelu,
    "ArgMax": export_argmax,
    "Slice": export_slice,
    "ShuffleChannel": export_shuffle_channel,
    **{kind: export_simple for kind in ("ReLU", "Sigmoid", "TanH", "Softmax", "Dropout",
                                        "Split", "Concat", "Flatten", "Reshape")},
}
