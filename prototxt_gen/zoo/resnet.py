"""ResNet (He et al., CVPR 2016): basic (ResNet-18/34) and bottleneck (ResNet-50/101) blocks.

Architecture keys (caffe_models/zoo/resnet*.yaml)::

    stem:    {width, kernel, stride, pool: {kernel, stride}}
    block:   basic | bottleneck
    expansion: output width / inner width of a bottleneck (4)
    downsample_on: first_1x1 | 3x3   which convolution of a stage's first block has stride 2
    stages:  [[blocks, inner width], ...]   stride 2 from the second stage on

Names follow the authors' Caffe release: conv1, pool1, res2a_branch2a ... res2a_branch1, res2a.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import add_relu, classifier, conv

BLOCKS = ("basic", "bottleneck")


def _branch(nb: NetBuilder, prefix: str, bottom: str, arch: dict, width: int, stride: int) -> str:
    """The residual branch of one block; returns its top (before the sum)."""
    if arch["block"] == "basic":
        x = conv(nb, f"{prefix}_branch2a", bottom, width, 3, stride)
        return conv(nb, f"{prefix}_branch2b", x, width, 3, activation=None)
    on_1x1 = arch["downsample_on"] == "first_1x1"
    x = conv(nb, f"{prefix}_branch2a", bottom, width, 1, stride if on_1x1 else 1)
    x = conv(nb, f"{prefix}_branch2b", x, width, 3, 1 if on_1x1 else stride)
    return conv(nb, f"{prefix}_branch2c", x, width * arch["expansion"], 1, activation=None)


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    if arch["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {arch['block']!r}")
    if arch["block"] == "bottleneck" and arch["downsample_on"] not in ("first_1x1", "3x3"):
        raise ValueError(f"downsample_on must be first_1x1 or 3x3, not {arch['downsample_on']!r}")
    stem = arch["stem"]
    x = conv(nb, "conv1", "data", stem["width"], stem["kernel"], stem["stride"])
    x = nb.add(L.max_pooling("pool1", x, "pool1", stem["pool"]["kernel"], stem["pool"]["stride"]))
    channels = stem["width"]
    expansion = arch["expansion"] if arch["block"] == "bottleneck" else 1
    for s, (blocks, width) in enumerate(arch["stages"]):
        for i in range(blocks):
            prefix = f"res{s + 2}{chr(ord('a') + i)}"
            stride = 2 if i == 0 and s > 0 else 1
            out = width * expansion
            branch = _branch(nb, prefix, x, arch, width, stride)
            shortcut = x
            if stride != 1 or channels != out:
                shortcut = conv(nb, f"{prefix}_branch1", x, out, 1, stride, activation=None)
            x = add_relu(nb, prefix, [shortcut, branch])
            channels = out
    return classifier(nb, x, num_classes, name=f"fc{num_classes}")
