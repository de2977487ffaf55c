"""Our Interp layer in real Caffe against an independent NumPy reference, and its backward
pass against numerical gradients.  Needs `make caffe` (a missing Caffe fails, never skips)."""
from __future__ import annotations

import numpy as np
import pytest

from prototxt_gen import caffe_pb2
from tools.export.pycaffe_net import load_net


# ---- independent reference: pad/crop with NumPy, then separable np.interp on the
# align-corners grid (output i sits at i * (n_eff - 1) / (n_out - 1) input pixels) ----

def reference_size(n_eff: int, param: dict) -> int:
    shrink, zoom = param.get("shrink_factor"), param.get("zoom_factor")
    if shrink is not None:
        n_eff = (n_eff - 1) // shrink + 1
    if zoom is not None:
        n_eff = n_eff + (n_eff - 1) * (zoom - 1)
    return n_eff


def pad_axis(x: np.ndarray, axis: int, beg: int, end: int) -> np.ndarray:
    """Zero-pad (positive) or crop (negative) `x` along `axis`."""
    n = x.shape[axis]
    x = np.take(x, range(max(0, -beg), n - max(0, -end)), axis=axis)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (max(0, beg), max(0, end))
    return np.pad(x, widths)


def interp_axis(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    n_in = x.shape[axis]
    grid = np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    return np.apply_along_axis(lambda v: np.interp(grid, np.arange(n_in), v), axis, x)


def reference_interp(x: np.ndarray, param: dict) -> np.ndarray:
    beg, end = param.get("pad_beg", 0), param.get("pad_end", 0)
    x = pad_axis(pad_axis(x.astype(np.float64), 2, beg, end), 3, beg, end)
    if "height" in param and "shrink_factor" not in param and "zoom_factor" not in param:
        out_h, out_w = param["height"], param["width"]
    else:
        out_h, out_w = reference_size(x.shape[2], param), reference_size(x.shape[3], param)
    return interp_axis(interp_axis(x, 2, out_h), 3, out_w)


def interp_net(shape, param: dict) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="interp", force_backward=True)
    net.layer.add(name="x", type="Input", top=["x"]).input_param.shape.add(dim=list(shape))
    layer = net.layer.add(name="interp", type="Interp", bottom=["x"], top=["y"])
    for key, value in param.items():
        setattr(layer.interp_param, key, value)
    return net


CASES = {
    "up, non-square": ((2, 3, 4, 6), {"height": 9, "width": 17}),
    "down": ((1, 2, 13, 11), {"height": 5, "width": 4}),
    "same size": ((1, 1, 5, 7), {"height": 5, "width": 7}),
    "to one pixel": ((1, 2, 5, 6), {"height": 1, "width": 1}),
    "zoom 2": ((1, 3, 5, 9), {"zoom_factor": 2}),
    "zoom 4 (ICNet conv6)": ((1, 2, 6, 11), {"zoom_factor": 4}),
    "shrink 2, odd (ICNet data_sub2)": ((1, 3, 17, 33), {"shrink_factor": 2}),
    "shrink 2, even": ((1, 1, 16, 22), {"shrink_factor": 2}),
    "shrink 3 then zoom 2": ((2, 2, 13, 20), {"shrink_factor": 3, "zoom_factor": 2}),
    "cropped, zoom 2": ((1, 2, 9, 12), {"zoom_factor": 2, "pad_beg": -1, "pad_end": -2}),
    "cropped, explicit size": ((1, 2, 9, 12), {"height": 7, "width": 5, "pad_beg": -2, "pad_end": -1}),
    "zero-padded, explicit size": ((1, 1, 6, 5), {"height": 11, "width": 9, "pad_beg": 1, "pad_end": 2}),
}


@pytest.mark.parametrize("shape,param", CASES.values(), ids=CASES.keys())
def test_forward_matches_numpy_reference(caffe, shape, param):
    net = load_net(caffe, interp_net(shape, param))
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    net.blobs["x"].data[...] = x
    got = net.forward()["y"]
    want = reference_interp(x, param)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_reference_is_align_corners():
    """Pin the reference itself: corners are copied and 2 -> 3 puts the mean in the middle."""
    x = np.array([[[[0.0, 2.0], [4.0, 6.0]]]])
    y = reference_interp(x, {"height": 3, "width": 3})
    np.testing.assert_allclose(y[0, 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])


@pytest.mark.parametrize("shape,param", [CASES["up, non-square"], CASES["down"],
                                         CASES["shrink 3 then zoom 2"],
                                         CASES["cropped, zoom 2"],
                                         CASES["zero-padded, explicit size"]],
                         ids=["up", "down", "shrink+zoom", "cropped", "zero-padded"])
def test_backward_matches_numerical_gradient(caffe, shape, param):
    """L = sum(y * g): Caffe's dL/dx must equal central differences of L over every input."""
    rng = np.random.default_rng(1)
    net = load_net(caffe, interp_net(shape, param))
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    net.blobs["x"].data[...] = x
    y = net.forward()["y"]
    g = rng.uniform(-1, 1, y.shape).astype(np.float32)
    net.blobs["y"].diff[...] = g
    net.backward()
    analytic = net.blobs["x"].diff.copy()

    def loss(values):
        net.blobs["x"].data[...] = values
        return float(np.sum(net.forward()["y"].astype(np.float64) * g))

    eps = 1e-2
    numeric = np.zeros(shape)
    for idx in np.ndindex(*shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-3)
    assert np.abs(analytic).max() > 0.1   # the check above is not vacuous


def test_backward_overwrites_stale_diff(caffe):
    """Caffe layers assign bottom diffs: a second backward must not accumulate."""
    shape, param = CASES["zoom 2"]
    net = load_net(caffe, interp_net(shape, param))
    net.blobs["x"].data[...] = 1.0
    net.forward()
    net.blobs["y"].diff[...] = 1.0
    net.backward()
    first = net.blobs["x"].diff.copy()
    net.blobs["y"].diff[...] = 1.0
    net.backward()
    np.testing.assert_array_equal(net.blobs["x"].diff, first)
