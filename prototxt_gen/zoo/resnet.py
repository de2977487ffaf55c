"""ResNet (He et al., CVPR 2016): basic (ResNet-18/34) and bottleneck (ResNet-50/101) blocks.

Architecture keys (caffe_models/zoo/resnet*.yaml)::

    stem:    {width, kernel, stride, pool: {kernel, stride[, pad]}}, or the deep stem of
             PSPNet's release {widths: [64, 64, 128], kernel: 3, stride, pool: {...}}:
             one convolution per width, the first with the stride
    block:   basic | bottleneck
    expansion: output width / inner width of a bottleneck (4)
    downsample_on: first_1x1 | 3x3   which convolution of a stage's first block has the stride
    stages:  [[blocks, inner width], ...]
    strides:   per stage (default 1, 2, 2, ...); the segmentation nets keep the last two at 1
    dilations: per stage, of the 3x3 convolutions (default all 1; dilated ResNets: 1, 1, 2, 4)
    names:   msra (default) | msra101 | psp   the layer names of a release (below)

Names follow the authors' Caffe release: conv1, pool1, res2a_branch2a ... res2a_branch1, res2a
(msra); ResNet-101's release numbers the blocks of a stage of more than three, res4a, res4b1
... res4b22 (msra101); PSPNet's release has conv1_1_3x3_s2, pool1_3x3_s2, conv4_1_1x1_reduce,
conv4_1_3x3, conv4_1_1x1_increase, conv4_1_1x1_proj, conv4_1 (psp).

The segmentation nets (prototxt_gen.zoo.pspnet, .deeplab) take :func:`backbone` and
:func:`feature_hw`; :func:`build` puts the ImageNet classifier on it.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import HW, add_relu, classifier, conv, conv_hw, pool_hw

BLOCKS = ("basic", "bottleneck")
NAMES = ("msra", "msra101", "psp")


def _unit_names(scheme: str, stage: int, i: int, blocks: int) -> tuple[str, tuple[str, str, str], str]:
    """(the unit's sum, its branch convolutions in order, its projection shortcut)."""
    if scheme == "psp":
        unit = f"conv{stage}_{i + 1}"
        return unit, (f"{unit}_1x1_reduce", f"{unit}_3x3", f"{unit}_1x1_increase"), f"{unit}_1x1_proj"
    letter = f"b{i}" if scheme == "msra101" and blocks > 3 and i > 0 else chr(ord("a") + i)
    unit = f"res{stage}{letter}"
    return unit, (f"{unit}_branch2a", f"{unit}_branch2b", f"{unit}_branch2c"), f"{unit}_branch1"


def _branch(nb: NetBuilder, names: tuple[str, str, str], bottom: str, arch: dict, width: int,
            stride: int, dilation: int) -> str:
    """The residual branch of one block; returns its top (before the sum)."""
    if arch["block"] == "basic":
        x = conv(nb, names[0], bottom, width, 3, stride, dilation=dilation)
        return conv(nb, names[1], x, width, 3, dilation=dilation, activation=None)
    on_1x1 = arch["downsample_on"] == "first_1x1"
    x = conv(nb, names[0], bottom, width, 1, stride if on_1x1 else 1)
    x = conv(nb, names[1], x, width, 3, 1 if on_1x1 else stride, dilation=dilation)
    return conv(nb, names[2], x, width * arch["expansion"], 1, activation=None)


def residual_unit(nb: NetBuilder, arch: dict, names: tuple[str, tuple[str, str, str], str], bottom: str,
                  channels: int, width: int, stride: int, dilation: int = 1) -> tuple[str, int]:
    """One residual unit of ``arch["block"]``: the branch, a 1x1 projection shortcut where the
    size changes, the sum and its ReLU; ``names`` = (sum, branch convolutions, projection), as
    :func:`_unit_names` gives them.  Returns the top and its channel count."""
    unit, branch_names, projection = names
    out = width * (arch["expansion"] if arch["block"] == "bottleneck" else 1)
    branch = _branch(nb, branch_names, bottom, arch, width, stride, dilation)
    shortcut = bottom
    if stride != 1 or channels != out:
        shortcut = conv(nb, projection, bottom, out, 1, stride, activation=None)
    return add_relu(nb, unit, [shortcut, branch]), out


def _stem(nb: NetBuilder, stem: dict, scheme: str) -> tuple[str, int]:
    pool, kernel = stem["pool"], stem["kernel"]
    if "widths" in stem:
        x = "data"
        for k, width in enumerate(stem["widths"]):
            stride = stem["stride"] if k == 0 else 1
            x = conv(nb, f"conv1_{k + 1}_{kernel}x{kernel}" + (f"_s{stride}" if stride != 1 else ""),
                     x, width, kernel, stride)
        channels = stem["widths"][-1]
    else:
        x = conv(nb, "conv1", "data", stem["width"], kernel, stem["stride"])
        channels = stem["width"]
    name = f"pool1_{pool['kernel']}x{pool['kernel']}_s{pool['stride']}" if scheme == "psp" else "pool1"
    x = nb.add(L.max_pooling(name, x, name, pool["kernel"], pool["stride"], pool.get("pad", 0)))
    return x, channels


def _per_stage(arch: dict) -> tuple[list[int], list[int]]:
    """Each stage's stride and dilation, checked against the stage count."""
    n = len(arch["stages"])
    strides = list(arch.get("strides", [1] + [2] * (n - 1)))
    dilations = list(arch.get("dilations", [1] * n))
    if len(strides) != n or len(dilations) != n:
        raise ValueError(f"strides and dilations need one value per stage ({n})")
    return strides, dilations


def _check(arch: dict) -> str:
    if arch["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {arch['block']!r}")
    if arch["block"] == "bottleneck" and arch["downsample_on"] not in ("first_1x1", "3x3"):
        raise ValueError(f"downsample_on must be first_1x1 or 3x3, not {arch['downsample_on']!r}")
    scheme = arch.get("names", "msra")
    if scheme not in NAMES:
        raise ValueError(f"names must be one of {', '.join(NAMES)}, not {scheme!r}")
    if scheme == "psp" and arch["block"] != "bottleneck":
        raise ValueError("names: psp names bottleneck blocks (1x1_reduce, 3x3, 1x1_increase)")
    return scheme


def backbone(nb: NetBuilder, arch: dict) -> tuple[str, int]:
    """The stem and the residual stages; returns the last top and its channel count."""
    scheme = _check(arch)
    x, channels = _stem(nb, arch["stem"], scheme)
    for s, ((blocks, width), first_stride, dilation) in enumerate(zip(arch["stages"], *_per_stage(arch))):
        for i in range(blocks):
            stride = first_stride if i == 0 else 1
            x, channels = residual_unit(nb, arch, _unit_names(scheme, s + 2, i, blocks), x, channels, width,
                                        stride, dilation)
    return x, channels


def feature_hw(arch: dict, input_hw: HW) -> HW:
    """The H x W :func:`backbone` ends with: each stride-2 unit halves as a 1x1/2 (or 3x3/2,
    pad 1) convolution does, rounding up."""
    stem, pool = arch["stem"], arch["stem"]["pool"]
    hw = conv_hw(input_hw, stem["kernel"], stem["stride"], stem["kernel"] // 2)
    hw = pool_hw(hw, pool["kernel"], pool["stride"], pool.get("pad", 0))
    for stride in _per_stage(arch)[0]:
        hw = conv_hw(hw, 1, stride, 0)
    return hw


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    x, _ = backbone(nb, arch)
    return classifier(nb, x, num_classes, name=f"fc{num_classes}")
