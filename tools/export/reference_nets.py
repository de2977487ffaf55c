"""Third-party network definitions (the authors' release files, ICNet) made runnable at any
input size: data layers become an Input layer, and the sizes those files hard-code for one
resolution — pyramid-pooling windows and the fixed Interp heights/widths behind them — are
recomputed for the new one so that the pyramid keeps its number of bins.

Used by the ONNX tests and benchmarks; the files themselves are never copied.
"""
from __future__ import annotations

from pathlib import Path

from prototxt_gen import caffe_pb2
from prototxt_gen.netprep import AnalysisError, with_image_input
from tools.export.caffe_net import (CaffeNetError, build_net, layer_shapes,
                                    load_net_param, pool_geometry)

#: Layers that keep a pyramid branch's spatial size (between its pooling and its Interp).
_POINTWISE = frozenset({"BatchNorm", "Scale", "ReLU", "Dropout"})

#: Input size the release's DF-Seg files and ICNet's evaluation file were written for.
RELEASE_SEG_SIZE = (1024, 2048)
ICNET_SIZE = (1025, 2049)


def deploy_param(net, input_shape) -> caffe_pb2.NetParameter:
    """A copy whose data layer (or declared input) is an Input layer of `input_shape`, without
    label-reading evaluation layers and without the layers TEST does not run."""
    try:
        return with_image_input(load_net_param(net), input_shape, phase="TEST")
    except AnalysisError as err:
        raise CaffeNetError(str(err)) from None


def _pyramid_pools(param: caffe_pb2.NetParameter) -> dict[str, str]:
    """Fixed-size Interp layer name → name of the Pooling layer its branch starts at."""
    producer = {}
    for layer in param.layer:
        for top in layer.top:
            if top not in layer.bottom:
                producer[top] = layer
    found = {}
    for layer in param.layer:
        if layer.type != "Interp" or not layer.interp_param.HasField("height"):
            continue
        node = producer.get(layer.bottom[0])
        while node is not None and (node.type in _POINTWISE or (
                node.type == "Convolution" and list(node.convolution_param.kernel_size) in ([1], [])
                and not node.convolution_param.HasField("kernel_h"))):
            node = producer.get(node.bottom[0])
        if node is not None and node.type == "Pooling" and not node.pooling_param.global_pooling:
            found[layer.name] = node.name
    return found


def fit_fixed_sizes(net, original_hw: tuple[int, int], input_shape) -> caffe_pb2.NetParameter:
    """`deploy_param(net, input_shape)` with its pyramid pooling re-sized: every pooling that
    feeds a fixed-size Interp keeps its number of bins (stride = size // bins, the last window
    reaching the edge) and the Interp targets the pooled feature's size. At `original_hw` the
    net is returned unchanged apart from its input."""
    n, c = input_shape[:2]
    original = deploy_param(net, (n, c) + tuple(original_hw))
    param = deploy_param(net, input_shape)
    pools = _pyramid_pools(param)
    if tuple(input_shape[2:]) == tuple(original_hw) or not pools:
        return param
    before = build_net(original)
    bins = {}
    for pool_name in set(pools.values()):
        layer = next(l for l in original.layer if l.name == pool_name)
        bottom_hw = before.bottom_shapes[pool_name][0][2:]
        bins[pool_name] = pool_geometry(layer, bottom_hw).output

    shapes = {layer.top[0]: tuple(layer.input_param.shape[0].dim)
              for layer in param.layer if layer.type == "Input"}
    source_hw = {}
    for layer in param.layer:
        if layer.type == "Input":
            continue
        bottoms = [shapes[b] for b in layer.bottom]
        if layer.name in bins:
            hw = bottoms[0][2:]
            p = layer.pooling_param
            for axis, (size, b) in enumerate(zip(hw, bins[layer.name])):
                if size < b:
                    raise CaffeNetError(f"layer {layer.name!r}: feature size {hw} is too small "
                                        f"for {bins[layer.name]} pyramid bins")
                stride = size // b
                kernel = size - (b - 1) * stride
                if axis == 0:
                    p.kernel_h, p.stride_h = kernel, stride
                else:
                    p.kernel_w, p.stride_w = kernel, stride
            p.ClearField("kernel_size")
            p.ClearField("stride")
            p.ClearField("pad")
            source_hw[layer.name] = hw
        if layer.name in pools:
            layer.interp_param.height, layer.interp_param.width = source_hw[pools[layer.name]]
        tops, _ = layer_shapes(layer, bottoms)
        shapes.update(zip(layer.top, tops))
    return param


def icnet_input_size(hw: tuple[int, int]) -> tuple[int, int]:
    """The size ICNet runs at for a requested one: the smallest 32k + 1 >= it per side (the
    image zero-padded). Its three branches (full, 1/2, 1/4 input) only line up for such sizes,
    which is why its evaluation input is 1025x2049 rather than 1024x2048."""
    return tuple(max(1, -(-(s - 1) // 32)) * 32 + 1 for s in hw)


def icnet_deploy(reference_dir: str | Path, input_hw: tuple[int, int]) -> caffe_pb2.NetParameter:
    """ICNet's Cityscapes evaluation net (BN merged, the one ICNet times) at `input_hw`, which
    must be of ICNet's 32k + 1 form (see `icnet_input_size`)."""
    if tuple(input_hw) != icnet_input_size(input_hw):
        raise CaffeNetError(f"ICNet needs sides of the form 32k+1, got {input_hw}; "
                            f"use {icnet_input_size(input_hw)}")
    path = Path(reference_dir) / "icnet" / "icnet_cityscapes.prototxt"
    return fit_fixed_sizes(path, ICNET_SIZE, (1, 3) + tuple(input_hw))
