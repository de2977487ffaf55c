"""Caffe prototxt + caffemodel → ONNX, reproducing Caffe's arithmetic exactly.

    python -m tools.to_onnx NET [WEIGHTS] --out MODEL.onnx [--input 1x3x1024x2048]

NET is any prototxt of ours or of the release (Input layer, old-style input_dim, or a data
layer such as ImageData, which becomes a graph input of the --input shape; labels and
Accuracy/loss layers are dropped). Without WEIGHTS the model gets random weights
(`--seed`), which is what latency benchmarks need.

Where Caffe and ONNX differ the graph spells Caffe's semantics out:
- Pooling: Caffe's ceil-mode output size and last-window clip become explicit end padding;
  AVE divides by the window clipped to the *padded* input (zeros Pad + count_include_pad=0),
  MAX ignores padding.
- Interp (PSPNet's layer): Slice for pad_beg/pad_end crops, then Resize with
  coordinate_transformation_mode=align_corners to the size Caffe computes.
- BatchNorm: statistics divided by the stored moving-average factor (0 → statistics zeroed,
  as Caffe does), eps from the layer.
- ArgMax: ties go to the last index (Caffe sorts (value, index) pairs descending), output float.
Node names are Caffe layer names; every Caffe blob keeps its name for its final value.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from prototxt_gen import caffe_pb2
from tools.caffe_net import (EVALUATION_LAYER_TYPES, CaffeNet, CaffeNetError, argmax_axis,
                             build_net, concat_axis, conv_geometry, interp_geometry,
                             is_data_layer, layer_runs_in, load_net_param, pool_geometry,
                             scale_span)
from tools.caffemodel import (CaffemodelError, Weights, fit_weights, random_weights,
                              read_caffemodel)
from tools.common.atomic import atomic_write_bytes
from tools.common.cli import one_line

OPSET = 17
IR_VERSION = 8  # the IR of opset 17; runtimes reject models stamped with a newer IR


class UnsupportedLayerError(CaffeNetError):
    """The net has layers the exporter cannot express; the message names all of them."""


SUPPORTED = frozenset({
    "Convolution", "Deconvolution", "BatchNorm", "Scale", "ReLU", "Sigmoid", "TanH", "Eltwise",
    "Concat", "Pooling", "InnerProduct", "Softmax", "ArgMax", "Interp", "Dropout", "Split",
    "Flatten",
})


@dataclass
class _Graph:
    """Nodes and initializers under construction, with SSA names for Caffe's in-place blobs."""
    net: CaffeNet
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)  # Caffe blob -> latest ONNX tensor
    writes_left: Counter = field(default_factory=Counter)
    counter: int = 0

    def const(self, hint: str, value, dtype=np.float32) -> str:
        self.counter += 1
        name = f"{hint}#c{self.counter}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def temp(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}#t{self.counter}"

    def node(self, op: str, inputs, outputs, name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))

    def bottom(self, blob: str) -> str:
        return self.current[blob]

    def top(self, blob: str, layer_name: str) -> str:
        """The ONNX name for this write of `blob`: the blob's own name for its last write."""
        self.writes_left[blob] -= 1
        last = self.writes_left[blob] == 0 and blob not in self.net.inputs  # inputs keep theirs
        name = blob if last else f"{blob}@{layer_name}"
        self.current[blob] = name
        return name


def _export_convolution(g: _Graph, layer, blobs, in_shape):
    geo = conv_geometry(layer)
    op = "Conv" if layer.type == "Convolution" else "ConvTranspose"
    inputs = [g.bottom(layer.bottom[0]), g.const(layer.name + "/weight", blobs[0])]
    if geo.bias_term:
        inputs.append(g.const(layer.name + "/bias", blobs[1]))
    g.node(op, inputs, [g.top(layer.top[0], layer.name)], layer.name,
           kernel_shape=list(geo.kernel), strides=list(geo.stride),
           pads=[geo.pad[0], geo.pad[1], geo.pad[0], geo.pad[1]],
           dilations=list(geo.dilation), group=geo.group)


def _slice(g: _Graph, x: str, hint: str, ends: tuple[int, int], starts=(0, 0)) -> str:
    out = g.temp(hint)
    g.node("Slice", [x, g.const(hint + "/starts", list(starts), np.int64),
                     g.const(hint + "/ends", list(ends), np.int64),
                     g.const(hint + "/axes", [2, 3], np.int64)], [out], hint)
    return out


def _grid_extent(kernel: int, stride: int, out: int) -> int:
    """Extent of Caffe's pooling-window grid in padded coordinates."""
    return (out - 1) * stride + kernel


def _export_pooling(g: _Graph, layer, blobs, in_shape):
    geo = pool_geometry(layer, in_shape[2:])
    if geo.method not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise UnsupportedLayerError(f"layer {layer.name!r}: STOCHASTIC pooling is not supported")
    x = g.bottom(layer.bottom[0])
    top = g.top(layer.top[0], layer.name)
    is_max = geo.method == caffe_pb2.PoolingParameter.MAX
    if geo.global_pooling:
        g.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], [top], layer.name)
        return
    height, width = in_shape[2:]
    extents = [_grid_extent(k, st, o) for k, st, o in zip(geo.kernel, geo.stride, geo.output)]
    attrs = dict(kernel_shape=list(geo.kernel), strides=list(geo.stride))
    if is_max:
        # Windows cover [-pad, extent - pad); Caffe's windows never read past the input, so the
        # begin padding (never the max) and any end padding behave like -inf padding.
        needed = [e - p for e, p in zip(extents, geo.pad)]
        if needed[0] < height or needed[1] < width:
            x = _slice(g, x, layer.name + "/crop", (min(needed[0], height), min(needed[1], width)))
        ends = [max(n - s, 0) for n, s in zip(needed, (height, width))]
        g.node("MaxPool", [x], [top], layer.name,
               pads=[geo.pad[0], geo.pad[1], ends[0], ends[1]], **attrs)
        return
    # AVE: Caffe divides by the window clipped to the padded input [-pad, size + pad): zero-pad
    # explicitly, then let pooling exclude only the extra end padding of the ceil-mode grid.
    if any(geo.pad):
        padded = g.temp(layer.name + "/pad")
        pads = [0, 0, geo.pad[0], geo.pad[1], 0, 0, geo.pad[0], geo.pad[1]]
        g.node("Pad", [x, g.const(layer.name + "/pads", pads, np.int64)], [padded],
               layer.name + "/pad", mode="constant")
        x = padded
    padded_hw = (height + 2 * geo.pad[0], width + 2 * geo.pad[1])
    if extents[0] < padded_hw[0] or extents[1] < padded_hw[1]:
        x = _slice(g, x, layer.name + "/crop",
                   (min(extents[0], padded_hw[0]), min(extents[1], padded_hw[1])))
    ends = [max(e - s, 0) for e, s in zip(extents, padded_hw)]
    g.node("AveragePool", [x], [top], layer.name, pads=[0, 0, ends[0], ends[1]],
           count_include_pad=0, **attrs)


def _export_interp(g: _Graph, layer, blobs, in_shape):
    geo = interp_geometry(layer, in_shape[2:])
    x = g.bottom(layer.bottom[0])
    height, width = in_shape[2:]
    if geo.crop_begin or geo.crop_end:
        x = _slice(g, x, layer.name + "/crop", (height - geo.crop_end, width - geo.crop_end),
                   starts=(geo.crop_begin, geo.crop_begin))
    sizes = g.const(layer.name + "/sizes", list(in_shape[:2]) + list(geo.output), np.int64)
    g.node("Resize", [x, "", "", sizes], [g.top(layer.top[0], layer.name)], layer.name,
           mode="linear", coordinate_transformation_mode="align_corners")


def _broadcast(values: np.ndarray, first_axis: int, ndim: int) -> np.ndarray:
    """Reshape a factor covering axes [first_axis, first_axis + values.ndim) to broadcast."""
    trailing = ndim - first_axis - values.ndim
    return values.reshape(values.shape + (1,) * trailing)


def _export_batchnorm(g: _Graph, layer, blobs, in_shape):
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


def _export_scale(g: _Graph, layer, blobs, in_shape):
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
        factor = g.const(layer.name + "/gamma", _broadcast(blobs[0], axis, ndim))
        bias_blob = blobs[1] if bias else None
    top = g.top(layer.top[0], layer.name)
    if bias_blob is None:
        g.node("Mul", [x, factor], [top], layer.name)
        return
    scaled = g.temp(layer.name + "/scaled")
    g.node("Mul", [x, factor], [scaled], layer.name)
    g.node("Add", [scaled, g.const(layer.name + "/beta", _broadcast(bias_blob, axis, ndim))],
           [top], layer.name + "/bias")


def _export_eltwise(g: _Graph, layer, blobs, in_shape):
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


def _export_inner_product(g: _Graph, layer, blobs, in_shape):
    p = layer.inner_product_param
    axis = p.axis % len(in_shape)
    x = g.bottom(layer.bottom[0])
    if len(in_shape) != 2 or axis != 1:
        flat = g.temp(layer.name + "/flatten")
        g.node("Flatten", [x], [flat], layer.name + "/flatten", axis=axis)
        x = flat
    out_shape = g.net.blob_shapes[layer.top[0]]
    inputs = [x, g.const(layer.name + "/weight", blobs[0])]
    if p.bias_term:
        inputs.append(g.const(layer.name + "/bias", blobs[1]))
    if axis == 1:
        g.node("Gemm", inputs, [g.top(layer.top[0], layer.name)], layer.name,
               transB=0 if p.transpose else 1)
        return
    flat_out = g.temp(layer.name + "/gemm")
    g.node("Gemm", inputs, [flat_out], layer.name, transB=0 if p.transpose else 1)
    g.node("Reshape", [flat_out, g.const(layer.name + "/shape", list(out_shape), np.int64)],
           [g.top(layer.top[0], layer.name)], layer.name + "/reshape")


def _export_argmax(g: _Graph, layer, blobs, in_shape):
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


def _export_simple(g: _Graph, layer, blobs, in_shape):
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
    elif kind == "Flatten":
        out_shape = g.net.blob_shapes[layer.top[0]]
        g.node("Reshape", [x, g.const(layer.name + "/shape", list(out_shape), np.int64)],
               [g.top(layer.top[0], layer.name)], layer.name)
    else:  # pragma: no cover - guarded by SUPPORTED
        raise UnsupportedLayerError(f"layer {layer.name!r}: unsupported type {kind!r}")


_EXPORTERS = {
    "Convolution": _export_convolution,
    "Deconvolution": _export_convolution,
    "Pooling": _export_pooling,
    "Interp": _export_interp,
    "BatchNorm": _export_batchnorm,
    "Scale": _export_scale,
    "Eltwise": _export_eltwise,
    "InnerProduct": _export_inner_product,
    "ArgMax": _export_argmax,
}


def check_supported(param: caffe_pb2.NetParameter) -> None:
    """Fail naming every layer of an unsupported type (before anything else is computed)."""
    bad = [f"{layer.name} ({layer.type})" for layer in param.layer
           if layer_runs_in(layer) and layer.type not in SUPPORTED and not is_data_layer(layer)
           and layer.type not in EVALUATION_LAYER_TYPES and layer.type != "Input"
           and not layer.type.endswith("Loss")]
    if bad:
        raise UnsupportedLayerError(f"unsupported layer types for ONNX export: {', '.join(bad)}; "
                                    f"supported: {', '.join(sorted(SUPPORTED))}")


def convert(net, weights: Weights | str | Path | None = None, input_shape=None, *,
            seed: int = 0, outputs: list[str] | None = None) -> onnx.ModelProto:
    """ONNX model of a Caffe net.

    `net`: prototxt path, NetParameter or CaffeNet; `weights`: caffemodel path, a
    {layer: [arrays]} dict, or None for random weights from `seed`; `input_shape`: (N, C, H, W)
    for a net fed by a data layer, or to override the declared input; `outputs`: Caffe blobs
    to expose (default: the net's outputs)."""
    if not isinstance(net, CaffeNet):
        param = load_net_param(net)
        check_supported(param)
        net = build_net(param, input_shape)
    source = "caffemodel"
    if weights is None:
        weights = random_weights(net, seed)
        source = "random weights"
    elif not isinstance(weights, dict):
        source = str(weights)
        weights = read_caffemodel(weights)
    blobs = fit_weights(net, weights, source)

    g = _Graph(net)
    g.current = {name: name for name in net.inputs}
    for layer in net.layers:
        g.writes_left.update(layer.top)
    for layer in net.layers:
        if layer.type not in SUPPORTED:
            raise UnsupportedLayerError(f"layer {layer.name!r}: unsupported type {layer.type!r}")
        in_shape = net.bottom_shapes[layer.name][0]
        exporter = _EXPORTERS.get(layer.type, _export_simple)
        exporter(g, layer, blobs.get(layer.name, []), in_shape)
        missing = [t for t in layer.top if t not in g.current]
        if missing:   # e.g. MAX Pooling's second top, the mask: ONNX gets the pooled values only
            raise UnsupportedLayerError(f"layer {layer.name!r} ({layer.type}): top(s) {missing} "
                                        "cannot be exported to ONNX")

    wanted = outputs if outputs is not None else net.outputs
    graph_outputs = []
    for blob in wanted:
        if blob not in g.current:
            raise CaffeNetError(f"output blob {blob!r} is not produced by the net")
        tensor = g.current[blob]
        shape = net.blob_shapes[blob]
        graph_outputs.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, shape))
    graph_inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
                    for name, shape in net.inputs.items()]
    graph = helper.make_graph(g.nodes, net.name, graph_inputs, graph_outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="dfseg.tools.to_onnx",
                              doc_string=f"Caffe net {net.name!r}, weights: {source}")
    onnx.checker.check_model(model)
    return model


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"input shape must be NxCxHxW, e.g. 1x3x1024x2048; "
                                         f"got {text!r}")
    return dims


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.to_onnx", description=__doc__.split("\n")[0])
    ap.add_argument("net", help="Caffe prototxt")
    ap.add_argument("weights", nargs="?", help="caffemodel (omit for random weights)")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--input", type=parse_shape, help="input shape NxCxHxW (needed for data "
                    "layers such as ImageData; overrides a declared input)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = ap.parse_args(argv)
    try:
        model = convert(args.net, args.weights, args.input, seed=args.seed)
    except (CaffeNetError, CaffemodelError, onnx.checker.ValidationError) as err:
        print(f"to_onnx: error: {one_line(err)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, model.SerializeToString())  # a failed write keeps the old .onnx
    except OSError as err:
        where = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
        print(f"to_onnx: error: {where}", file=sys.stderr)
        return 2
    ins = ", ".join(f"{i.name} {tuple(d.dim_value for d in i.type.tensor_type.shape.dim)}"
                    for i in model.graph.input)
    outs = ", ".join(o.name for o in model.graph.output)
    weights = args.weights or f"random weights (seed {args.seed})"
    print(f"{out}: {len(model.graph.node)} nodes, inputs {ins}, outputs {outs}; weights: {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
