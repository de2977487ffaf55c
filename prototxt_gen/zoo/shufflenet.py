"""ShuffleNet V1 (Zhang et al., CVPR 2018) and V2 (Ma et al., ECCV 2018).

Channel shuffle is the ``ShuffleChannel`` layer; depthwise convolutions are grouped
Convolutions.  Pooling windows are Caffe's (3x3/2 without padding, rounded up), which give
the papers' map sizes on even inputs (112 -> 56 -> 28 -> 14 -> 7 at 224).

Architecture keys, both versions (caffe_models/zoo/shufflenet_v*.yaml)::

    stem:   {width, stride, pool: {kernel, stride}}     3x3 convolution, max-pooling
    stages: [[units, output width], ...]               the first unit of a stage has stride 2

V1 adds ``groups`` (g of the 1x1 group convolutions) and ``bottleneck_ratio`` (inner width /
output width, 1/4); V2 adds ``last`` (the 1x1 convolution before pooling, 1024).
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import check_divisible, classifier, conv, depthwise


def _stem(nb: NetBuilder, stem: dict) -> str:
    x = conv(nb, "conv1", "data", stem["width"], 3, stem["stride"])
    return nb.add(L.max_pooling("pool1", x, "pool1", stem["pool"]["kernel"], stem["pool"]["stride"]))


# ----------------------------------------------------------------------------- V1

def unit_v1(nb: NetBuilder, name: str, bottom: str, in_channels: int, out: int, stride: int,
            groups: int, ratio: float, first_group: bool) -> str:
    """1x1 group conv -> shuffle -> 3x3 depthwise -> 1x1 group conv; stride 2 concatenates a
    3x3/2 average pooling of the input (the branch makes out - in channels), stride 1 adds."""
    mid = int(out * ratio)
    check_divisible(f"{name}: inner width", mid, groups)
    branch_out = out - in_channels if stride == 2 else out
    check_divisible(f"{name}: branch width", branch_out, groups)
    # The paper: no group convolution on the first pointwise layer of the net (24 inputs).
    x = conv(nb, f"{name}/gconv1", bottom, mid, 1, group=1 if first_group else groups)
    if groups > 1:
        x = nb.add(L.shuffle_channel(f"{name}/shuffle", x, f"{name}/shuffle", groups))
    x = depthwise(nb, f"{name}/dwconv", x, mid, stride, activation=None)
    x = conv(nb, f"{name}/gconv2", x, branch_out, 1, group=groups, activation=None)
    if stride == 2:
        pool = nb.add(L.ave_pooling(f"{name}/pool", bottom, f"{name}/pool", (3, 3), (2, 2)))
        top = nb.add(L.concat(f"{name}/concat", [pool, x], f"{name}/concat"))
    else:
        top = nb.add(L.eltwise_sum(f"{name}/sum", [bottom, x], f"{name}/sum"))
    nb.add(L.relu(f"{name}/relu", top))
    return top


def build_v1(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    x = _stem(nb, arch["stem"])
    channels = arch["stem"]["width"]
    for s, (units, width) in enumerate(arch["stages"], start=2):
        for i in range(units):
            x = unit_v1(nb, f"stage{s}_{i + 1}", x, channels, width, 2 if i == 0 else 1,
                        arch["groups"], arch["bottleneck_ratio"], first_group=(s == 2 and i == 0))
            channels = width
    return classifier(nb, x, num_classes)


# ----------------------------------------------------------------------------- V2

def _branch_v2(nb: NetBuilder, name: str, bottom: str, width: int, stride: int) -> str:
    x = conv(nb, f"{name}/conv1", bottom, width, 1)
    x = depthwise(nb, f"{name}/dwconv", x, width, stride, activation=None)
    return conv(nb, f"{name}/conv2", x, width, 1)


def unit_v2(nb: NetBuilder, name: str, bottom: str, in_channels: int, out: int, stride: int) -> str:
    """Stride 1: split the channels in half, transform one half, concatenate, shuffle (g=2).
    Stride 2: both halves come from the whole input (a depthwise/2 + 1x1 shortcut branch)."""
    check_divisible(f"{name}: output width", out, 2)
    half = out // 2
    if stride == 1:
        check_divisible(f"{name}: input width", in_channels, 2)
        kept, rest = f"{name}/split1", f"{name}/split2"
        nb.add(L.slice_channels(f"{name}/split", bottom, [kept, rest], [in_channels // 2]))
        branches = [kept, _branch_v2(nb, f"{name}/branch2", rest, half, 1)]
    else:
        x = depthwise(nb, f"{name}/branch1/dwconv", bottom, in_channels, stride, activation=None)
        x = conv(nb, f"{name}/branch1/conv1", x, half, 1)
        branches = [x, _branch_v2(nb, f"{name}/branch2", bottom, half, stride)]
    x = nb.add(L.concat(f"{name}/concat", branches, f"{name}/concat"))
    return nb.add(L.shuffle_channel(f"{name}/shuffle", x, f"{name}/shuffle", 2))


def build_v2(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    x = _stem(nb, arch["stem"])
    channels = arch["stem"]["width"]
    for s, (units, width) in enumerate(arch["stages"], start=2):
        for i in range(units):
            x = unit_v2(nb, f"stage{s}_{i + 1}", x, channels, width, 2 if i == 0 else 1)
            channels = width
    x = conv(nb, "conv5", x, arch["last"], 1)
    return classifier(nb, x, num_classes)
