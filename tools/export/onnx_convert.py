"""A whole Caffe net (TEST phase) as an ONNX model, one exporter per layer type."""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from prototxt_gen import caffe_pb2
from tools.export import caffe_net
from tools.export.caffe_net import CaffeNet, CaffeNetError
from tools.export.caffemodel import Weights, net_with_weights
from tools.export import onnx_ops, onnx_ops_pointwise
from tools.export.onnx_graph import IR_VERSION, OPSET, Graph, UnsupportedLayerError

EXPORTERS = {**onnx_ops.EXPORTERS, **onnx_ops_pointwise.EXPORTERS}
SUPPORTED = frozenset(EXPORTERS)


def check_supported(param: caffe_pb2.NetParameter) -> None:
    """Fail naming every layer of a type ONNX export does not cover."""
    caffe_net.check_supported(param, SUPPORTED, "ONNX export")


def prepare(net, weights: Weights | str | Path | None = None, input_shape=None, *,
            seed: int = 0) -> tuple[CaffeNet, Weights, str]:
    """(net, the blobs each layer needs, where they came from) for `convert`'s arguments."""
    return net_with_weights(net, weights, input_shape, seed=seed, supported=SUPPORTED,
                            target="ONNX export")


def build_graph(net: CaffeNet, blobs: Weights, masks_from_caffe: bool = False) -> Graph:
    """Every layer's nodes, in Caffe's order; `Graph.writes` says where each output went.
    `masks_from_caffe` (for the check): see `Graph.masks_from_caffe`."""
    g = Graph(net, masks_from_caffe=masks_from_caffe)
    g.current = {name: name for name in net.inputs}
    for layer in net.layers:
        g.writes_left.update(layer.top)
    for layer in net.layers:
        exporter = EXPORTERS.get(layer.type)
        if exporter is None:
            raise UnsupportedLayerError(f"layer {layer.name!r}: unsupported type {layer.type!r}")
        exporter(g, layer, blobs.get(layer.name, []), net.bottom_shapes[layer.name][0])
        missing = [t for t in layer.top if t not in g.current]
        if missing:   # a top the exporter could not express: say so instead of a KeyError later
            raise UnsupportedLayerError(f"layer {layer.name!r} ({layer.type}): top(s) {missing} "
                                        "cannot be exported to ONNX")
    return g


def make_model(g: Graph, outputs: list[str], doc: str) -> onnx.ModelProto:
    """The checked model of graph `g` whose outputs are the ONNX values `outputs` (a Caffe
    blob's final value has the blob's name, an earlier one `blob@layer`)."""
    net = g.net
    shape_of = {**net.inputs, **{w.value: net.blob_shapes[w.blob] for w in g.writes}}
    graph_outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape_of[name])
                     for name in outputs]
    graph_inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
                    for name, shape in [*net.inputs.items(), *g.mask_inputs.values()]]
    graph = helper.make_graph(g.nodes, net.name, graph_inputs, graph_outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="dfseg.tools.to_onnx",
                              doc_string=doc)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:  # a net ONNX cannot hold as given
        raise CaffeNetError(f"net {net.name!r}: the ONNX model does not validate: {err}") from None
    return model


def convert(net, weights: Weights | str | Path | None = None, input_shape=None, *,
            seed: int = 0, outputs: list[str] | None = None) -> onnx.ModelProto:
    """ONNX model of a Caffe net.

    `net`: prototxt path, NetParameter or CaffeNet; `weights`: caffemodel path, a
    {layer: [arrays]} dict, or None for random weights from `seed`; `input_shape`: (N, C, H, W)
    for a net fed by a data layer, or to override the declared input; `outputs`: Caffe blobs
    to expose (default: the net's outputs)."""
    net, blobs, source = prepare(net, weights, input_shape, seed=seed)
    g = build_graph(net, blobs)
    wanted = outputs if outputs is not None else net.outputs
    missing = [blob for blob in wanted if blob not in g.current]
    if missing:
        raise CaffeNetError(f"output blob {missing[0]!r} is not produced by the net")
    return make_model(g, [g.current[blob] for blob in wanted],
                      f"Caffe net {net.name!r}, weights: {source}")
