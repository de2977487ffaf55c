"""Our Upsample (SegNet / ENet max-unpooling) and ShuffleChannel (ShuffleNet) layers in real
Caffe: forward against independent NumPy references, backward against central differences,
and BVLC's two-top MAX Pooling (its mask) feeding Upsample.  Needs `make caffe`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prototxt_gen import caffe_pb2
from tools.gpu.layers import analytic_gradient, numeric_gradient
from tools.export.pycaffe_net import load_net

MAX = caffe_pb2.PoolingParameter.MAX
REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- references

def reference_max_pool(x: np.ndarray, kernel, stride, pad=(0, 0)):
    """Pooled values and Caffe-style masks (y * W + x of each window's first maximum, in
    row-major window order), windows on Caffe's ceil-mode grid clipped to the input."""
    n, c, height, width = x.shape
    out_hw = [int(np.ceil((size + 2 * p - k) / s)) + 1
              for size, k, s, p in zip((height, width), kernel, stride, pad)]
    for axis, size in enumerate((height, width)):
        if any(pad) and (out_hw[axis] - 1) * stride[axis] >= size + pad[axis]:
            out_hw[axis] -= 1  # Caffe clips the last window of padded pooling only
    values = np.zeros((n, c) + tuple(out_hw), np.float32)
    mask = np.zeros_like(values)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            h0, w0 = max(i * stride[0] - pad[0], 0), max(j * stride[1] - pad[1], 0)
            h1 = min(i * stride[0] - pad[0] + kernel[0], height)
            w1 = min(j * stride[1] - pad[1] + kernel[1], width)
            window = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            first = window.argmax(axis=2)  # argmax returns the first of equal maxima
            values[:, :, i, j] = np.take_along_axis(window, first[..., None], 2)[..., 0]
            rows, cols = np.divmod(first, w1 - w0)
            mask[:, :, i, j] = (h0 + rows) * width + (w0 + cols)
    return values, mask


def reference_unpool(values: np.ndarray, mask: np.ndarray, out_hw) -> np.ndarray:
    """Scatter each value to its mask index in a zero plane; later entries overwrite."""
    n, c = values.shape[:2]
    out = np.zeros((n, c, out_hw[0] * out_hw[1]), np.float32)
    flat_values, flat_mask = values.reshape(n, c, -1), mask.reshape(n, c, -1).astype(int)
    for b in range(n):
        for ch in range(c):
            for v, m in zip(flat_values[b, ch], flat_mask[b, ch]):
                out[b, ch, m] = v
    return out.reshape((n, c) + tuple(out_hw))


def reference_shuffle(x: np.ndarray, group: int) -> np.ndarray:
    n, c = x.shape[:2]
    return x.reshape((n, group, c // group) + x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


# ----------------------------------------------------------------------------- nets

def _input(net, name, shape):
    net.layer.add(name=name, type="Input", top=[name]).input_param.shape.add(dim=list(shape))


def pool_unpool_net(shape, kernel, stride, pad=(0, 0), **upsample) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="pool_unpool", force_backward=True)
    _input(net, "x", shape)
    pool = net.layer.add(name="pool", type="Pooling", bottom=["x"], top=["pooled", "mask"])
    p = pool.pooling_param
    p.pool = MAX
    p.kernel_h, p.kernel_w = kernel
    p.stride_h, p.stride_w = stride
    p.pad_h, p.pad_w = pad
    up = net.layer.add(name="unpool", type="Upsample", bottom=["pooled", "mask"], top=["y"])
    for key, value in upsample.items():
        setattr(up.upsample_param, key, value)
    return net


def unpool_net(shape, **upsample) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="unpool", force_backward=True)
    _input(net, "x", shape)
    _input(net, "mask", shape)
    up = net.layer.add(name="unpool", type="Upsample", bottom=["x", "mask"], top=["y"])
    for key, value in upsample.items():
        setattr(up.upsample_param, key, value)
    return net


def shuffle_net(shape, group, in_place=False) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="shuffle", force_backward=True)
    _input(net, "x", shape)
    if in_place:  # in place on a copy, so that the input blob keeps its own diff
        net.layer.add(name="copy", type="Power", bottom=["x"], top=["y"])
    layer = net.layer.add(name="shuffle", type="ShuffleChannel",
                          bottom=["y" if in_place else "x"], top=["y"])
    layer.shuffle_channel_param.group = group
    return net


# ----------------------------------------------------------------------------- Upsample

POOL_CASES = {
    # shape, kernel, stride, pad, upsample_param, expected output H x W
    "segnet 2x2/2, even": ((2, 3, 6, 8), (2, 2), (2, 2), (0, 0), {"scale": 2}, (6, 8)),
    "segnet fixed size, odd": ((1, 2, 45, 60), (2, 2), (2, 2), (0, 0),
                               {"scale": 2, "upsample_h": 45, "upsample_w": 60}, (45, 60)),
    "enet pad_out": ((1, 4, 9, 15), (2, 2), (2, 2), (0, 0),
                     {"scale": 2, "pad_out_h": True, "pad_out_w": True}, (9, 15)),
    "per-axis scale": ((1, 2, 6, 5), (2, 1), (2, 1), (0, 0), {"scale_h": 2, "scale_w": 1},
                       (6, 5)),
    "overlapping 3x3/2, padded": ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1),
                                  {"upsample_h": 7, "upsample_w": 9}, (7, 9)),
}


@pytest.mark.parametrize("shape,kernel,stride,pad,param,out_hw", POOL_CASES.values(),
                         ids=POOL_CASES.keys())
def test_bvlc_pooling_mask_feeds_upsample(caffe, shape, kernel, stride, pad, param, out_hw):
    net = load_net(caffe, pool_unpool_net(shape, kernel, stride, pad, **param))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.forward()
    want_values, want_mask = reference_max_pool(x, kernel, stride, pad)
    np.testing.assert_array_equal(net.blobs["pooled"].data, want_values)
    np.testing.assert_array_equal(net.blobs["mask"].data, want_mask)
    y = net.blobs["y"].data
    assert y.shape == shape[:2] + out_hw
    np.testing.assert_array_equal(y, reference_unpool(want_values, want_mask, out_hw))
    # each kept value sits where it came from: unpooling keeps exactly the window maxima
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept])


def test_upsample_of_an_arbitrary_mask_last_write_wins(caffe):
    shape = (2, 3, 3, 4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    mask = rng.integers(0, 6 * 8, size=shape).astype(np.float32)
    mask[0, 0, 0, :2] = 5  # a repeated index: the later value is the one written
    net = load_net(caffe, unpool_net(shape, scale=2))
    net.blobs["x"].data[...] = x
    net.blobs["mask"].data[...] = mask
    y = net.forward()["y"]
    np.testing.assert_array_equal(y, reference_unpool(x, mask, (6, 8)))
    assert y[0, 0].ravel()[5] == x[0, 0, 0, 1]


@pytest.mark.parametrize("repeated", [False, True], ids=["distinct", "repeated indices"])
def test_upsample_backward_matches_numerical_gradient(caffe, repeated):
    shape = (2, 2, 3, 3)
    rng = np.random.default_rng(2)
    plane = 6 * 6
    mask = np.stack([rng.permutation(plane)[:9] for _ in range(4)]).reshape(shape)
    if repeated:
        mask[:, :, 1, :] = mask[:, :, 0, :]  # every index of row 0 written twice
    feeds = {"x": rng.normal(size=shape).astype(np.float32), "mask": mask.astype(np.float32)}
    net = load_net(caffe, unpool_net(shape, scale=2))
    g = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
    analytic = analytic_gradient(net, feeds, "x", g)
    np.testing.assert_allclose(analytic, numeric_gradient(net, feeds, "x", g, 1e-2),
                               rtol=1e-4, atol=1e-4)
    if repeated:
        assert not analytic[:, :, 0, :].any()  # overwritten values get no gradient
    assert not net.blobs["mask"].diff.any()


def test_pool_then_unpool_backward_matches_numerical_gradient(caffe):
    """The composite SegNet uses, on inputs 0.1 apart so a 1e-2 step never moves a maximum."""
    shape = (1, 2, 5, 6)
    rng = np.random.default_rng(3)
    x = (rng.permutation(60).reshape(shape) * 0.1).astype(np.float32)
    net = load_net(caffe, pool_unpool_net(shape, (3, 3), (2, 2), (1, 1), upsample_h=5,
                                          upsample_w=6))
    g = rng.normal(size=shape).astype(np.float32)
    analytic = analytic_gradient(net, {"x": x}, "x", g)
    np.testing.assert_allclose(analytic, numeric_gradient(net, {"x": x}, "x", g, 1e-2),
                               rtol=1e-4, atol=1e-4)


def test_mask_outside_the_output_aborts_with_the_layer_name(tmp_path):
    """A mask index past the output plane is a fatal error naming the layer (in a child
    process: glog's fatal error ends it)."""
    from google.protobuf import text_format
    proto = tmp_path / "bad.prototxt"
    proto.write_text(text_format.MessageToString(unpool_net((1, 1, 2, 2), scale=2)))
    script = (
        "import numpy as np\n"
        "from tools.runtime.caffe import import_caffe\n"
        "caffe = import_caffe(); caffe.set_mode_cpu()\n"
        f"net = caffe.Net({str(proto)!r}, caffe.TEST)\n"
        "net.blobs['mask'].data[...] = 16\n"
        "net.forward()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0
    assert "Upsample unpool: mask index 16" in done.stderr


# ----------------------------------------------------------------------------- ShuffleChannel

@pytest.mark.parametrize("shape,group", [((2, 6, 3, 4), 3), ((1, 12, 2, 2), 4),
                                         ((2, 8, 1, 5), 2), ((1, 5, 2, 3), 1),
                                         ((1, 6, 2, 2), 6)])
def test_shuffle_forward_matches_numpy(caffe, shape, group):
    net = load_net(caffe, shuffle_net(shape, group))
    x = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    net.blobs["x"].data[...] = x
    np.testing.assert_array_equal(net.forward()["y"], reference_shuffle(x, group))


def test_shuffle_channel_order_is_shufflenets():
    """Pin the reference: with 2 groups of 3, channels 0 1 2 | 3 4 5 come out 0 3 1 4 2 5."""
    x = np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)
    assert reference_shuffle(x, 2).ravel().tolist() == [0, 3, 1, 4, 2, 5]


@pytest.mark.parametrize("in_place", [False, True], ids=["separate top", "in place"])
def test_shuffle_backward_matches_numerical_gradient(caffe, in_place):
    shape = (2, 6, 2, 3)
    rng = np.random.default_rng(5)
    net = load_net(caffe, shuffle_net(shape, 3, in_place))
    feeds = {"x": rng.normal(size=shape).astype(np.float32)}
    g = rng.normal(size=shape).astype(np.float32)
    analytic = analytic_gradient(net, feeds, "x", g)
    if in_place:
        np.testing.assert_array_equal(net.blobs["y"].data, reference_shuffle(feeds["x"], 3))
    np.testing.assert_allclose(analytic, numeric_gradient(net, feeds, "x", g, 1e-2),
                               rtol=1e-4, atol=1e-4)
    # the gradient is the top gradient put back in the input's channel order
    np.testing.assert_array_equal(reference_shuffle(analytic, 3), g)


def test_shuffle_rejects_groups_that_do_not_divide_the_channels(tmp_path):
    from google.protobuf import text_format
    proto = tmp_path / "bad.prototxt"
    proto.write_text(text_format.MessageToString(shuffle_net((1, 6, 2, 2), 4)))
    script = ("from tools.runtime.caffe import import_caffe\n"
              "caffe = import_caffe(); caffe.set_mode_cpu()\n"
              f"caffe.Net({str(proto)!r}, caffe.TEST)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0
    assert "6 channels do not split into 4 groups" in done.stderr
