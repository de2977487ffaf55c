"""dfseg's own Caffe layers on the GPU (Interp, Upsample, ShuffleChannel): their CUDA passes
against the CPU layer of the same library, and a central-difference gradient check of the
CUDA backward.  Used by tools.gpu_check (``make gpu-check``); needs pycaffe from the CUDA
build (``make caffe-gpu``) and an NVIDIA GPU.

Each case is a small net (Input layers, the layer under test, force_backward) with seeded
random inputs and a seeded random top gradient; forward and backward run once in CPU mode
and once in GPU mode, and every output and input gradient must agree within ``tolerance``
times the largest CPU value (at least 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prototxt_gen import caffe_pb2
from tools.engines.caffe import set_caffe_mode
from tools.export.pycaffe_net import load_net

__all__ = ["LayerCase", "LAYER_CASES", "GRADIENT_CASES", "cpu_vs_gpu", "gradient_check", "numeric_gradient",
           "analytic_gradient"]

LAYER_TOLERANCE = 1e-5
GRADIENT_EPS = 1e-2
GRADIENT_TOLERANCE = 1e-3


@dataclass
class LayerCase:
    name: str
    layer: str                         # "Interp", "Upsample", "ShuffleChannel"
    inputs: dict[str, tuple[int, ...]]
    param: dict = field(default_factory=dict)
    pooled_mask: bool = False          # Upsample fed by a real MAX Pooling's mask
    in_place: bool = False             # ShuffleChannel with top == bottom


def _net(case: LayerCase) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name=case.name.replace(" ", "_"), force_backward=True)
    for name, shape in case.inputs.items():
        net.layer.add(name=name, type="Input", top=[name]).input_param.shape.add(dim=list(shape))
    bottoms = list(case.inputs)
    if case.pooled_mask:   # x -> MAX Pooling (values, mask) -> Upsample
        pool = net.layer.add(name="pool", type="Pooling", bottom=["x"], top=["pooled", "mask"])
        pool.pooling_param.pool = caffe_pb2.PoolingParameter.MAX
        pool.pooling_param.kernel_size, pool.pooling_param.stride = 2, 2
        bottoms = ["pooled", "mask"]
    if case.in_place:      # in place on a copy, so that the input keeps its own diff
        net.layer.add(name="copy", type="Power", bottom=bottoms, top=["y"])
        bottoms = ["y"]
    layer = net.layer.add(name="under_test", type=case.layer, bottom=bottoms, top=["y"])
    target = {"Interp": layer.interp_param, "Upsample": layer.upsample_param,
              "ShuffleChannel": layer.shuffle_channel_param}[case.layer]
    for key, value in case.param.items():
        setattr(target, key, value)
    return net


def _feeds(case: LayerCase, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in case.inputs.items():
        if name == "mask":   # arbitrary indices into the output plane, some repeated
            scale = case.param.get("scale", 2)
            flat = rng.integers(0, shape[2] * shape[3] * scale * scale, size=shape).reshape(-1)
            # every 7th entry repeats its predecessor: the later one must win on both devices
            flat[1::7] = flat[0::7][:flat[1::7].size]
            feeds[name] = flat.reshape(shape).astype(np.float32)
        else:
            feeds[name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return feeds


LAYER_CASES = [
    LayerCase("interp up, non-square", "Interp", {"x": (2, 3, 4, 6)}, {"height": 9, "width": 17}),
    LayerCase("interp down", "Interp", {"x": (1, 2, 13, 11)}, {"height": 5, "width": 4}),
    LayerCase("interp zoom 8, ICNet-sized", "Interp", {"x": (1, 19, 64, 128)}, {"zoom_factor": 8}),
    LayerCase("interp shrink 2, odd", "Interp", {"x": (1, 3, 257, 513)}, {"shrink_factor": 2}),
    LayerCase("interp shrink 3 then zoom 2", "Interp", {"x": (2, 2, 13, 20)},
              {"shrink_factor": 3, "zoom_factor": 2}),
    LayerCase("interp cropped, zoom 2", "Interp", {"x": (1, 2, 9, 12)},
              {"zoom_factor": 2, "pad_beg": -1, "pad_end": -2}),
    LayerCase("interp zero-padded", "Interp", {"x": (1, 1, 6, 5)},
              {"height": 11, "width": 9, "pad_beg": 1, "pad_end": 2}),
    LayerCase("interp to one pixel", "Interp", {"x": (1, 2, 5, 6)}, {"height": 1, "width": 1}),
    LayerCase("upsample after max pooling", "Upsample", {"x": (2, 16, 64, 96)}, {"scale": 2},
              pooled_mask=True),
    LayerCase("upsample, repeated mask indices", "Upsample",
              {"x": (2, 3, 5, 7), "mask": (2, 3, 5, 7)}, {"scale": 2}),
    LayerCase("shuffle 3 groups", "ShuffleChannel", {"x": (2, 6, 3, 4)}, {"group": 3}),
    LayerCase("shuffle 4 groups, large", "ShuffleChannel", {"x": (1, 232, 32, 64)}, {"group": 4}),
    LayerCase("shuffle in place", "ShuffleChannel", {"x": (2, 8, 5, 3)}, {"group": 2},
              in_place=True),
]

GRADIENT_CASES = [
    LayerCase("interp up", "Interp", {"x": (1, 2, 4, 5)}, {"height": 7, "width": 9}),
    LayerCase("interp shrink 2", "Interp", {"x": (1, 1, 9, 7)}, {"shrink_factor": 2}),
    LayerCase("interp zero-padded", "Interp", {"x": (1, 1, 4, 4)},
              {"height": 6, "width": 7, "pad_beg": 1, "pad_end": 1}),
    LayerCase("upsample, repeated mask indices", "Upsample",
              {"x": (1, 2, 3, 3), "mask": (1, 2, 3, 3)}, {"scale": 2}),
    LayerCase("shuffle in place", "ShuffleChannel", {"x": (1, 6, 2, 3)}, {"group": 3},
              in_place=True),
]


def _forward_backward(caffe, case: LayerCase, gpu: int | None) -> dict[str, np.ndarray]:
    """The output and the gradient of every input after one forward and one backward."""
    set_caffe_mode(caffe, gpu)
    net = load_net(caffe, _net(case))
    for name, value in _feeds(case).items():
        net.blobs[name].data[...] = value
    y = net.forward()["y"].copy()
    net.blobs["y"].diff[...] = np.random.default_rng(1).uniform(-1, 1, y.shape)
    net.backward()
    grads = {f"d{name}": net.blobs[name].diff.copy() for name in case.inputs if name != "mask"}
    return {"y": y, **grads}


def _scaled_difference(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def cpu_vs_gpu(caffe, gpu: int, cases=LAYER_CASES) -> list[dict]:
    """One row per case: the largest scaled CPU/GPU difference of each output and gradient."""
    rows = []
    for case in cases:
        cpu, dev = _forward_backward(caffe, case, None), _forward_backward(caffe, case, gpu)
        diffs = {k: _scaled_difference(dev[k], cpu[k]) for k in cpu}
        rows.append({"case": case.name, "layer": case.layer, "max_diff": diffs,
                     "ok": all(d <= LAYER_TOLERANCE for d in diffs.values())})
    return rows


def numeric_gradient(net, feeds: dict, wrt: str, g: np.ndarray, eps: float = GRADIENT_EPS) -> np.ndarray:
    """d sum(y * g) / d feeds[wrt] by central differences (the other feeds, e.g. a mask, fixed)."""
    def loss(values):
        for name, value in feeds.items():
            net.blobs[name].data[...] = values if name == wrt else value
        return float(np.sum(net.forward()["y"].astype(np.float64) * g))

    x = feeds[wrt]
    numeric = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    return numeric


def analytic_gradient(net, feeds: dict, wrt: str, g: np.ndarray) -> np.ndarray:
    """d sum(y * g) / d feeds[wrt] by the layers' own backward."""
    for name, value in feeds.items():
        net.blobs[name].data[...] = value
    net.forward()
    net.blobs["y"].diff[...] = g
    net.backward()
    return net.blobs[wrt].diff.copy()


def gradient_check(caffe, gpu: int, cases=GRADIENT_CASES) -> list[dict]:
    """The CUDA backward of each case against central differences of the CUDA forward."""
    set_caffe_mode(caffe, gpu)
    rows = []
    for case in cases:
        net, feeds = load_net(caffe, _net(case)), _feeds(case, seed=2)
        for name, value in feeds.items():
            net.blobs[name].data[...] = value
        y = net.forward()["y"]
        g = np.random.default_rng(3).uniform(-1, 1, y.shape).astype(np.float32)
        analytic = analytic_gradient(net, feeds, "x", g)
        numeric = numeric_gradient(net, feeds, "x", g)
        error = float(np.abs(analytic - numeric).max())
        rows.append({"case": case.name, "layer": case.layer, "max_abs_error": error,
                     "largest_gradient": float(np.abs(numeric).max()),
                     "ok": error <= GRADIENT_TOLERANCE * max(1.0, float(np.abs(numeric).max()))})
    return rows
