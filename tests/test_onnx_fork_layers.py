"""Export of the segmentation forks' BN layer (our Caffe has none, so these are checked in ONNX
Runtime against NumPy transcriptions of the forks' forward passes), and the weight shapes the
exporter expects for them. Runs without a Caffe build."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from tools.export.caffe_net import build_net
from tools.export.caffemodel import caffemodel_bytes, random_weights, read_caffemodel
from tools.export.caffe_net import UnsupportedLayerError
from tools.export.onnx_convert import convert

RNG = np.random.default_rng(7)


def bn_net(bn_param_text: str, shape=(2, 3, 4, 5)) -> caffe_pb2.NetParameter:
    return text_format.Parse(f"""
        name: "bn"
        layer {{ name: "input" type: "Input" top: "data" input_param {{ shape {{ {' '.join(f'dim: {d}' for d in shape)} }} }} }}
        layer {{ name: "bn" type: "BN" bottom: "data" top: "data" bn_param {{ {bn_param_text} }} }}
        """, caffe_pb2.NetParameter())


def run(net, weights, x):
    model = convert(net, weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"data": x})[0]


def per_channel(values):
    return np.asarray(values, np.float32).reshape(1, -1, 1, 1)


def test_pspnet_bn_uses_stored_statistics():
    """PSPNet / ICNet's BN (TEST phase or frozen): slope * (x - mean) / sqrt(var + eps) + bias,
    blobs slope, bias, mean, variance, each 1 x C x 1 x 1."""
    net = bn_net("slope_filler { value: 1 } bias_filler { value: 0 } frozen: true eps: 1e-3")
    assert build_net(net).param_shapes["bn"] == [(1, 3, 1, 1)] * 4
    slope, bias, mean = (per_channel(RNG.normal(size=3)) for _ in range(3))
    var = per_channel(RNG.uniform(0.2, 2, 3))
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    got = run(net, {"bn": [slope, bias, mean, var]}, x)
    want = slope * (x - mean) / np.sqrt(var + np.float32(1e-3)) + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_segnet_bn_inference_is_scale_and_shift():
    net = bn_net("bn_mode: INFERENCE scale_filler { value: 1 } shift_filler { value: 0.001 }")
    assert build_net(net).param_shapes["bn"] == [(1, 3, 1, 1)] * 2
    scale, shift = per_channel(RNG.normal(size=3)), per_channel(RNG.normal(size=3))
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(run(net, {"bn": [scale, shift]}, x), scale * x + shift,
                               rtol=1e-6, atol=1e-6)


def test_segnet_bn_learn_mode_is_refused():
    net = bn_net("scale_filler { value: 1 } shift_filler { value: 0.001 }")
    with pytest.raises(UnsupportedLayerError, match="bn_mode LEARN"):
        convert(net)


def test_fork_weights_round_trip_through_a_caffemodel(tmp_path):
    """Random BN and channel-shared PReLU blobs keep their shapes through our caffemodel writer
    (a shared slope is a 0-axis blob in Caffe)."""
    net = bn_net("frozen: true")
    layer = net.layer.add(name="act", type="PReLU", bottom=["data"], top=["data"])
    layer.prelu_param.channel_shared = True
    caffe_net = build_net(net)
    weights = random_weights(caffe_net, seed=1)
    assert [w.shape for w in weights["bn"]] == [(1, 3, 1, 1)] * 4
    assert weights["act"][0].shape == ()
    path = tmp_path / "w.caffemodel"
    path.write_bytes(caffemodel_bytes(weights))
    back = read_caffemodel(path)
    assert [b.shape for b in back["act"]] == [()]
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    slope, bias, mean, var = weights["bn"]
    y = slope * (x - mean) / np.sqrt(var + np.float32(1e-5)) + bias
    want = np.where(y > 0, y, y * weights["act"][0])
    np.testing.assert_allclose(run(net, str(path), x), want, rtol=1e-5, atol=1e-6)
