"""MobileNet V1 (Howard et al., 2017) and V2 (Sandler et al., CVPR 2018).

Depthwise convolutions are grouped Convolutions (one group per channel); ReLU stands for
V2's ReLU6, as in the public Caffe releases (BVLC Caffe has no ReLU6).

V1 architecture keys (caffe_models/zoo/mobilenet_v1.yaml)::

    stem:   {width, stride}             3x3 convolution
    layers: [[pointwise width, depthwise stride], ...]   the paper's Table 1

V2 architecture keys (caffe_models/zoo/mobilenet_v2.yaml)::

    stem:        {width, stride}
    bottlenecks: [[expansion t, width c, repeats n, stride s], ...]   the paper's Table 2
    last:        width of the final 1x1 convolution
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import classifier, conv, depthwise


def build_v1(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    stem = arch["stem"]
    x = conv(nb, "conv1", "data", stem["width"], 3, stem["stride"])
    channels = stem["width"]
    for i, (width, stride) in enumerate(arch["layers"], start=2):
        x = depthwise(nb, f"conv{i}/dw", x, channels, stride)
        x = conv(nb, f"conv{i}/sep", x, width, 1)
        channels = width
    return classifier(nb, x, num_classes)


def inverted_residual(nb: NetBuilder, name: str, bottom: str, in_channels: int, expansion: int,
                      width: int, stride: int) -> str:
    """1x1 expansion (none when t = 1), 3x3 depthwise, linear 1x1 projection; the input is
    added back where shapes allow (stride 1, same width)."""
    x = bottom
    hidden = in_channels * expansion
    if expansion != 1:
        x = conv(nb, f"{name}/expand", x, hidden, 1)
    x = depthwise(nb, f"{name}/dwise", x, hidden, stride)
    x = conv(nb, f"{name}/linear", x, width, 1, activation=None)
    if stride == 1 and in_channels == width:
        x = nb.add(L.eltwise_sum(f"{name}/sum", [bottom, x], f"{name}/sum"))
    return x


def build_v2(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    stem = arch["stem"]
    x = conv(nb, "conv1", "data", stem["width"], 3, stem["stride"])
    channels = stem["width"]
    for s, (expansion, width, repeats, stride) in enumerate(arch["bottlenecks"], start=2):
        for i in range(repeats):
            x = inverted_residual(nb, f"conv{s}_{i + 1}", x, channels, expansion, width,
                                  stride if i == 0 else 1)
            channels = width
    x = conv(nb, "conv_last", x, arch["last"], 1)
    return classifier(nb, x, num_classes)
