"""The layer catalogue (prototxt_gen.shapes.catalogue): one place for each layer type's kind
and parameter shapes, which the shape rules, the exporters' net, the BatchNorm merge, the
analysis and the training data all use."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2, shapes
from prototxt_gen.generate import net_for
from prototxt_gen.netprep import AnalysisError, with_input_layer
from prototxt_gen.shapes import (COMPUTE, DATA, EVALUATION, LOSS, is_data_layer, layer_kind,
                                 param_shapes)
from tools.export.caffe_net import build_net
from tools.export.merge_bn import MergeError, expected_param_shapes

REPO = Path(__file__).resolve().parent.parent


def _layer(text: str) -> caffe_pb2.LayerParameter:
    return text_format.Parse(text, caffe_pb2.LayerParameter())


@pytest.mark.parametrize("text, kind", [
    ('type: "ImageData" top: "data" top: "label"', DATA),
    ('type: "Input" top: "data"', DATA),
    ('type: "DenseImageData" top: "data"', DATA),
    ('type: "Python" top: "data"', DATA),
    ('type: "Python" bottom: "x" top: "y"', COMPUTE),   # a Python layer inside the net
    ('type: "Accuracy" bottom: "s" bottom: "l" top: "a"', EVALUATION),
    ('type: "Silence" bottom: "s"', EVALUATION),
    ('type: "SoftmaxWithLoss" bottom: "s" bottom: "l" top: "loss"', LOSS),
    ('type: "FocalLoss" bottom: "s" bottom: "l" top: "loss"', LOSS),   # any ...Loss
    ('type: "Convolution" bottom: "x" top: "y"', COMPUTE),
])
def test_kinds(text, kind):
    layer = _layer(text)
    assert layer_kind(layer) == kind
    assert is_data_layer(layer) == (kind == DATA)


def test_one_set_of_data_layer_types():
    """Package code names the data layer types in the catalogue alone (the data layers' shape
    rules aside): no module keeps a set of its own."""
    allowed = {"prototxt_gen/shapes/catalogue.py", "prototxt_gen/shapes/data_layers.py"}
    offenders = []
    for package in ("dfseg", "prototxt_gen", "tools", "pop", "solvers"):
        for path in (REPO / package).rglob("*.py"):
            rel = str(path.relative_to(REPO))
            text = path.read_text()
            if rel not in allowed and re.search(r'"HDF5Data"|"WindowData"', text):
                offenders.append(rel)
    assert not offenders, offenders


@pytest.mark.parametrize("model, form, size", [("df1", "deploy", (64, 64)),
                                                ("df1seg", "deploy", (128, 256)),
                                                ("enet", "deploy", (64, 128)),
                                                ("shufflenet_v2", "deploy", (64, 64))])
def test_rules_count_what_the_catalogue_shapes(model, form, size):
    """params of every layer = the elements of its catalogued parameter blobs, which are the
    exporters' parameter shapes."""
    from prototxt_gen.analysis import analyze
    net = net_for(model, form, input_size=size)
    cnet = build_net(net)
    counted = {info.name: info.params for info in analyze(net).layers}
    for name, blobs in cnet.param_shapes.items():
        assert counted[name] == sum(math.prod(s) for s in blobs), name
    assert sum(counted.values()) == sum(math.prod(s) for b in cnet.param_shapes.values() for s in b)


def test_param_shapes_in_caffe_order():
    conv = _layer('type: "Convolution" convolution_param { num_output: 8 kernel_size: 3 group: 2 }')
    assert param_shapes(conv, [(1, 4, 9, 9)]) == [(8, 2, 3, 3), (8,)]
    deconv = _layer('type: "Deconvolution" convolution_param { num_output: 8 kernel_h: 4 kernel_w: 2 '
                    'group: 2 bias_term: false }')
    assert param_shapes(deconv, [(1, 4, 9, 9)]) == [(4, 4, 4, 2)]
    ip = _layer('type: "InnerProduct" inner_product_param { num_output: 5 transpose: true }')
    assert param_shapes(ip, [(2, 3, 4, 4)]) == [(48, 5), (5,)]
    assert param_shapes(_layer('type: "BatchNorm"'), [(1, 6, 2, 2)]) == [(6,), (6,), (1,)]
    assert param_shapes(_layer('type: "Scale" scale_param { bias_term: true num_axes: -1 }'),
                        [(1, 6, 2, 2)]) == [(6, 2, 2), (6, 2, 2)]
    assert param_shapes(_layer('type: "PReLU" prelu_param { channel_shared: true }'), [(1, 6)]) == [()]
    assert param_shapes(_layer('type: "BN" bn_param { bn_mode: INFERENCE }'), [(1, 6, 2, 2)]) == \
        [(1, 6, 1, 1)] * 2
    assert param_shapes(_layer('type: "ReLU"'), [(1, 6, 2, 2)]) == []
    # unknown dimensions stay unknown
    assert param_shapes(conv, [(None, 4, None, None)]) == [(8, 2, 3, 3), (8,)]
    assert param_shapes(ip, [(None, 3, None, None)]) == [(None, 5), (5,)]


def test_merge_bn_shapes_come_from_the_catalogue():
    """The merge checks a caffemodel from the prototxt alone: channels known, sizes not."""
    net = text_format.Parse("""
layer { name: "data" type: "ImageData" top: "data" top: "label" image_data_param { source: "x" } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 2 } }
""", caffe_pb2.NetParameter())
    assert expected_param_shapes(net) == {"conv": [(4, 3, 3, 3)], "bn": [(4,), (4,), (1,)],
                                          "prelu": [(4,)], "fc": [(2, None), (2,)]}
    net.layer[1].convolution_param.group = 0
    with pytest.raises(MergeError, match="layer 'conv' .*group must be positive"):
        expected_param_shapes(net)


def test_with_input_layer_hands_data_layers_over():
    net = net_for("df1seg", "val")
    swapped = with_input_layer(net, {"data": (1, 3, 64, 128), "label": (1, 1, 64, 128)})
    assert swapped.layer[0].type == "Input" and not any(is_data_layer(l) for l in swapped.layer[1:])
    with pytest.raises(AnalysisError, match="the data layer also produces \\['label'\\]"):
        with_input_layer(net, {"data": (1, 3, 64, 128)})
