"""Single-layer exports checked in ONNX Runtime against NumPy transcriptions of Caffe's CPU
loops (pooling_layer.cpp, PSPNet's interp.cpp, conv/deconv via im2col/col2im arithmetic,
batch_norm_layer.cpp, argmax_layer.cpp). These run without a Caffe build."""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prototxt_gen import caffe_pb2
from tools.export.caffe_net import build_net, interp_geometry, pool_geometry
from tools.export.onnx_convert import convert

RNG = np.random.default_rng(1234)


def one_layer_net(input_shape, layer: caffe_pb2.LayerParameter, extra_inputs=()):
    net = caffe_pb2.NetParameter(name="one")
    data = net.layer.add(name="input", type="Input", top=["data"])
    data.input_param.shape.add(dim=list(input_shape))
    for name, shape in extra_inputs:
        extra = net.layer.add(name=f"input_{name}", type="Input", top=[name])
        extra.input_param.shape.add(dim=list(shape))
    if not layer.bottom:
        layer.bottom.append("data")
    if not layer.top:
        layer.top.append("out")
    net.layer.append(layer)
    return net


def run_onnx(net, feeds: dict[str, np.ndarray], weights=None):
    model = convert(net, weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# ----------------------------------------------------------------------------- pooling


def caffe_pool(x: np.ndarray, layer: caffe_pb2.LayerParameter) -> np.ndarray:
    geo = pool_geometry(layer, x.shape[2:])
    (kh, kw), (sh, sw), (ph, pw) = geo.kernel, geo.stride, geo.pad
    n, c, height, width = x.shape
    out = np.zeros((n, c) + geo.output, dtype=np.float32)
    for i in range(geo.output[0]):
        for j in range(geo.output[1]):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, height + ph), min(ws + kw, width + pw)
            pool_size = (he - hs) * (we - ws)
            hs, ws = max(hs, 0), max(ws, 0)
            he, we = min(he, height), min(we, width)
            window = x[:, :, hs:he, ws:we]
            if layer.pooling_param.pool == caffe_pb2.PoolingParameter.MAX:
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                out[:, :, i, j] = window.sum(axis=(2, 3)) / pool_size
    return out


def pooling_layer(method, kernel, stride, pad, round_floor=False, global_pooling=False):
    layer = caffe_pb2.LayerParameter(name="pool", type="Pooling")
    p = layer.pooling_param
    p.pool = method
    if global_pooling:
        p.global_pooling = True
        return layer
    p.kernel_h, p.kernel_w = kernel
    p.stride_h, p.stride_w = stride
    p.pad_h, p.pad_w = pad
    if round_floor:
        p.round_mode = caffe_pb2.PoolingParameter.FLOOR
    return layer


MAX, AVE = caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE


@pytest.mark.parametrize("method", [MAX, AVE])
@pytest.mark.parametrize("size,kernel,stride,pad", [
    ((3, 3), (2, 2), (2, 2), (1, 1)),  # the padded last window is clipped away
    ((7, 9), (3, 3), (2, 2), (0, 0)),  # ceil mode adds a partial window
    ((8, 16), (32, 32), (32, 32), (0, 0)),  # window larger than the input (PSP at small size)
    ((33, 65), (13, 25), (10, 20), (0, 0)),  # ICNet's pool3
    ((6, 10), (3, 3), (2, 2), (1, 1)),  # the usual stem pooling
    ((7, 8), (1, 2), (3, 3), (0, 0)),  # stride larger than the kernel
])
def test_pooling_matches_caffe_loops(method, size, kernel, stride, pad):
    layer = pooling_layer(method, kernel, stride, pad)
    x = RNG.normal(size=(1, 3) + size).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x})
    want = caffe_pool(x, layer)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from([MAX, AVE]), h=st.integers(1, 12), w=st.integers(1, 12),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 2), pw=st.integers(0, 2), floor=st.booleans())
def test_pooling_property(method, h, w, kh, kw, sh, sw, ph, pw, floor):
    from tools.export.caffe_net import CaffeNetError
    layer = pooling_layer(method, (kh, kw), (sh, sw), (ph, pw), round_floor=floor)
    x = RNG.normal(size=(1, 2, h, w)).astype(np.float32)
    try:
        want = caffe_pool(x, layer)
    except CaffeNetError:
        return  # Caffe itself refuses (pad >= kernel, or a window outside the input)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", [MAX, AVE])
def test_global_pooling(method):
    x = RNG.normal(size=(1, 4, 5, 7)).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, pooling_layer(method, None, None, None,
                                                         global_pooling=True)), {"data": x})
    want = x.max(axis=(2, 3), keepdims=True) if method == MAX else x.mean(axis=(2, 3),
                                                                          keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- Interp


def caffe_interp(x: np.ndarray, layer: caffe_pb2.LayerParameter) -> np.ndarray:
    """caffe_cpu_interp2 of PSPNet's fork, in float32 like the C++ code."""
    geo = interp_geometry(layer, x.shape[2:])
    height1 = x.shape[2] - geo.crop_begin - geo.crop_end
    width1 = x.shape[3] - geo.crop_begin - geo.crop_end
    height2, width2 = geo.output
    f32 = np.float32
    rheight = f32(height1 - 1) / f32(height2 - 1) if height2 > 1 else f32(0)
    rwidth = f32(width1 - 1) / f32(width2 - 1) if width2 > 1 else f32(0)
    src = x[:, :, geo.crop_begin:, geo.crop_begin:]
    out = np.zeros(x.shape[:2] + geo.output, dtype=np.float32)
    for h2 in range(height2):
        h1r = f32(rheight * f32(h2))
        h1 = int(h1r)
        h1p = 1 if h1 < height1 - 1 else 0
        h1l = f32(h1r - h1)
        h0l = f32(1) - h1l
        for w2 in range(width2):
            w1r = f32(rwidth * f32(w2))
            w1 = int(w1r)
            w1p = 1 if w1 < width1 - 1 else 0
            w1l = f32(w1r - w1)
            w0l = f32(1) - w1l
            out[:, :, h2, w2] = (h0l * (w0l * src[:, :, h1, w1] + w1l * src[:, :, h1, w1 + w1p])
                                 + h1l * (w0l * src[:, :, h1 + h1p, w1]
                                          + w1l * src[:, :, h1 + h1p, w1 + w1p]))
    return out


def interp_layer(**params):
    layer = caffe_pb2.LayerParameter(name="interp", type="Interp")
    for key, value in params.items():
        setattr(layer.interp_param, key, value)
    return layer


@pytest.mark.parametrize("size,params,expected", [
    ((9, 17), dict(zoom_factor=2), (17, 33)),
    ((33, 65), dict(zoom_factor=4), (129, 257)),
    ((1025, 2049), dict(shrink_factor=2), (513, 1025)),
    ((8, 16), dict(shrink_factor=3), (3, 6)),
    ((9, 17), dict(shrink_factor=2, zoom_factor=3), (13, 25)),
    ((1, 2), dict(height=33, width=65), (33, 65)),  # PSP bin up-sampling, non-square
    ((3, 3), dict(height=32, width=64), (32, 64)),
    ((40, 30), dict(height=7, width=13), (7, 13)),  # down-sampling to fixed sizes
    ((5, 5), dict(height=1, width=1), (1, 1)),
    ((10, 12), dict(zoom_factor=2, pad_beg=-1, pad_end=-2), (13, 17)),  # crop, then zoom
    ((11, 11), dict(shrink_factor=2, pad_beg=0, pad_end=-1), (5, 5)),
])
def test_interp_matches_caffe_loops(size, params, expected):
    layer = interp_layer(**params)
    x = RNG.normal(size=(1, 3) + size).astype(np.float32)
    want = caffe_interp(x, layer)
    assert want.shape[2:] == expected
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_interp_rejects_positive_padding():
    from tools.export.caffe_net import CaffeNetError
    with pytest.raises(CaffeNetError, match="'interp'.*pad_beg"):
        build_net(one_layer_net((1, 1, 4, 4), interp_layer(zoom_factor=2, pad_beg=1)))


# ----------------------------------------------------------------------------- convolutions


def caffe_conv(x, weight, bias, stride, pad, dilation, group):
    n, c, height, width = x.shape
    out_c, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (height + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (width + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    out = np.zeros((n, out_c, oh, ow), dtype=np.float64)
    cin, cout = c // group, out_c // group
    for gi in range(group):
        xs = xp[:, gi * cin:(gi + 1) * cin]
        ws = weight[gi * cout:(gi + 1) * cout]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilation[0]:i * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                           j * dilation[1]:j * dilation[1] + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, gi * cout:(gi + 1) * cout] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def caffe_deconv(x, weight, stride, pad, group):
    """col2im of Caffe's backward-convolution forward pass: every input pixel scatters its
    kernel into the output, then the pad border is cut away."""
    n, c, height, width = x.shape
    _, cout, kh, kw = weight.shape
    full = np.zeros((n, cout * group, stride[0] * (height - 1) + kh,
                     stride[1] * (width - 1) + kw))
    cin = c // group
    for gi in range(group):
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,co->nohw", x[:, gi * cin:(gi + 1) * cin],
                                    weight[gi * cin:(gi + 1) * cin, :, i, j])
                full[:, gi * cout:(gi + 1) * cout,
                     i:i + stride[0] * (height - 1) + 1:stride[0],
                     j:j + stride[1] * (width - 1) + 1:stride[1]] += contrib
    return full[:, :, pad[0]:full.shape[2] - pad[0], pad[1]:full.shape[3] - pad[1]].astype(np.float32)


def conv_layer(kind, num_output, kernel, stride=(1, 1), pad=(0, 0), dilation=1, group=1,
               bias=True):
    layer = caffe_pb2.LayerParameter(name="conv", type=kind)
    p = layer.convolution_param
    p.num_output, p.group, p.bias_term = num_output, group, bias
    p.kernel_h, p.kernel_w = kernel
    p.stride_h, p.stride_w = stride
    p.pad_h, p.pad_w = pad
    if dilation != 1:
        p.dilation.append(dilation)
    return layer


@pytest.mark.parametrize("cin,cout,kernel,stride,pad,dilation,group", [
    (3, 8, (3, 3), (2, 2), (1, 1), 1, 1),
    (8, 8, (3, 3), (1, 1), (2, 2), 2, 4),
    (6, 4, (1, 5), (1, 2), (0, 2), 1, 2),
    (4, 4, (3, 3), (1, 1), (1, 1), 1, 4),  # depthwise
])
def test_convolution(cin, cout, kernel, stride, pad, dilation, group):
    layer = conv_layer("Convolution", cout, kernel, stride, pad, dilation, group)
    x = RNG.normal(size=(1, cin, 9, 11)).astype(np.float32)
    w = RNG.normal(size=(cout, cin // group) + kernel).astype(np.float32)
    b = RNG.normal(size=cout).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x}, {"conv": [w, b]})
    np.testing.assert_allclose(got, caffe_conv(x, w, b, stride, pad, (dilation,) * 2, group),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c,cout,kernel,stride,pad,group", [
    (19, 19, (4, 4), (2, 2), (1, 1), 19),  # the release's bilinear x2 up-sampling
    (19, 19, (16, 16), (8, 8), (4, 4), 19),  # the release's x8 up-sampling
    (4, 6, (3, 3), (2, 2), (0, 0), 2),
])
def test_deconvolution(c, cout, kernel, stride, pad, group):
    layer = conv_layer("Deconvolution", cout, kernel, stride, pad, group=group, bias=False)
    x = RNG.normal(size=(1, c, 5, 7)).astype(np.float32)
    w = RNG.normal(size=(c, cout // group) + kernel).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x}, {"conv": [w]})
    np.testing.assert_allclose(got, caffe_deconv(x, w, stride, pad, group), rtol=1e-4, atol=1e-4)


def test_bilinear_deconvolution_upsamples_constant_exactly():
    from tools.export.caffemodel import bilinear_kernel
    layer = conv_layer("Deconvolution", 3, (4, 4), (2, 2), (1, 1), group=3, bias=False)
    x = np.full((1, 3, 6, 6), 2.5, dtype=np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x},
                   {"conv": [bilinear_kernel((3, 1, 4, 4))]})
    assert got.shape == (1, 3, 12, 12)
    np.testing.assert_allclose(got[:, :, 1:-1, 1:-1], 2.5, rtol=1e-6)  # interior, away from borders


# ----------------------------------------------------------------------------- BN, Scale, misc


@pytest.mark.parametrize("factor", [0.37, 1.0, 0.0])
def test_batchnorm_uses_moving_average_factor(factor):
    layer = caffe_pb2.LayerParameter(name="bn", type="BatchNorm")
    layer.batch_norm_param.eps = 1e-3
    x = RNG.normal(size=(1, 4, 3, 3)).astype(np.float32)
    mean = RNG.normal(size=4).astype(np.float32)
    var = RNG.uniform(0.5, 2, size=4).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x},
                   {"bn": [mean, var, np.array([factor], np.float32)]})
    scale = 0.0 if factor == 0 else 1.0 / factor  # batch_norm_layer.cpp: 0 zeroes the stats
    want = (x - (mean * scale).reshape(1, 4, 1, 1)) / np.sqrt(
        (var * scale).reshape(1, 4, 1, 1) + 1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_scale_layer(bias):
    layer = caffe_pb2.LayerParameter(name="sc", type="Scale")
    layer.scale_param.bias_term = bias
    x = RNG.normal(size=(1, 3, 4, 5)).astype(np.float32)
    gamma = RNG.normal(size=3).astype(np.float32)
    beta = RNG.normal(size=3).astype(np.float32)
    got = run_onnx(one_layer_net(x.shape, layer), {"data": x},
                   {"sc": [gamma, beta] if bias else [gamma]})
    want = x * gamma.reshape(1, 3, 1, 1) + (beta.reshape(1, 3, 1, 1) if bias else 0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scale_layer_with_two_bottoms():
    layer = caffe_pb2.LayerParameter(name="sc", type="Scale", bottom=["data", "factor"])
    layer.scale_param.axis = 0  # an (N, C) factor lines up with the data from axis 0
    x = RNG.normal(size=(1, 3, 4, 5)).astype(np.float32)
    f = RNG.normal(size=(1, 3)).astype(np.float32)
    model = convert(one_layer_net(x.shape, layer, [("factor", (1, 3))]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": x, "factor": f})[0]
    np.testing.assert_allclose(got, x * f.reshape(1, 3, 1, 1), rtol=1e-6)


@pytest.mark.parametrize("operation,coeffs", [("SUM", [0.5, -2.0]), ("SUM", []),
                                              ("PROD", []), ("MAX", [])])
def test_eltwise(operation, coeffs):
    layer = caffe_pb2.LayerParameter(name="e", type="Eltwise", bottom=["data", "other"])
    layer.eltwise_param.operation = getattr(caffe_pb2.EltwiseParameter, operation)
    layer.eltwise_param.coeff.extend(coeffs)
    a = RNG.normal(size=(1, 2, 3, 3)).astype(np.float32)
    b = RNG.normal(size=(1, 2, 3, 3)).astype(np.float32)
    model = convert(one_layer_net(a.shape, layer, [("other", a.shape)]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": a, "other": b})[0]
    c = coeffs or [1, 1]
    want = {"SUM": c[0] * a + c[1] * b, "PROD": a * b, "MAX": np.maximum(a, b)}[operation]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_leaky_relu_and_argmax_ties_pick_the_last_index():
    net = one_layer_net((1, 3, 1, 2), caffe_pb2.LayerParameter(name="relu", type="ReLU",
                                                                top=["data"]))
    net.layer[1].relu_param.negative_slope = 0.1
    arg = net.layer.add(name="pred", type="ArgMax", bottom=["data"], top=["pred"])
    arg.argmax_param.axis = 1
    x = np.array([[[[1.0, -1.0]], [[1.0, -3.0]], [[0.5, -1.0]]]], dtype=np.float32)
    got = run_onnx(net, {"data": x})
    # column 0: channels 0 and 1 tie at 1.0 -> Caffe's descending (value, index) sort gives 1;
    # column 1: leaky values -0.1, -0.3, -0.1 -> tie between 0 and 2 -> 2.
    np.testing.assert_array_equal(got, np.array([[[[1.0, 2.0]]]], dtype=np.float32))
    assert got.dtype == np.float32


def test_inner_product_softmax_flatten_concat():
    net = caffe_pb2.NetParameter(name="misc")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[2, 3, 2, 2])
    net.layer.add(name="flat", type="Flatten", bottom=["data"], top=["flat"])
    ip = net.layer.add(name="fc", type="InnerProduct", bottom=["data"], top=["fc"])
    ip.inner_product_param.num_output = 5
    net.layer.add(name="cat", type="Concat", bottom=["flat", "fc"], top=["cat"])
    net.layer.add(name="prob", type="Softmax", bottom=["cat"], top=["prob"])
    net.layer.add(name="drop", type="Dropout", bottom=["prob"], top=["prob"])
    x = RNG.normal(size=(2, 3, 2, 2)).astype(np.float32)
    w = RNG.normal(size=(5, 12)).astype(np.float32)
    b = RNG.normal(size=5).astype(np.float32)
    got = run_onnx(net, {"data": x}, {"fc": [w, b]})
    cat = np.concatenate([x.reshape(2, 12), x.reshape(2, 12) @ w.T + b], axis=1)
    want = np.exp(cat - cat.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert math.isclose(float(got.sum()), 2.0, rel_tol=1e-5)


def test_split_sigmoid_tanh():
    net = caffe_pb2.NetParameter(name="split")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 2, 3, 3])
    net.layer.add(name="split", type="Split", bottom=["data"], top=["a", "b"])
    net.layer.add(name="sig", type="Sigmoid", bottom=["a"], top=["a"])
    net.layer.add(name="tanh", type="TanH", bottom=["b"], top=["b"])
    net.layer.add(name="sum", type="Eltwise", bottom=["a", "b"], top=["out"])
    x = RNG.normal(size=(1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(net, {"data": x}), 1 / (1 + np.exp(-x)) + np.tanh(x),
                               rtol=1e-5, atol=1e-6)
