"""BiSeNet (Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic
Segmentation", ECCV 2018): a spatial path at 1/8 and a context path (Xception39 or ResNet-18)
fused by the feature fusion module, as the first author's public PyTorch release
(ycszen/TorchSeg, model/bisenet) builds it for inference:

* spatial path: convolution-BN-ReLU units of stride 2 (7x7, 3x3, 3x3), then a 1x1 unit;
* context path: the backbone's last three stages (1/8, 1/16, 1/32); global average pooling
  of the 1/32 map through a 1x1 unit, spread back over the 1/32 map (``Interp`` of a 1x1
  map: every position the same); an attention refinement module (ARM) on the 1/32 and the
  1/16 features, each added to the context from above, interpolated to the next scale and
  refined by a 3x3 unit;
* ARM: 3x3 unit, then its attention vector sigmoid(BN(1x1 conv(global pool))) multiplies
  the map channel-wise;
* feature fusion module (FFM): concatenation -> 1x1 unit -> attention vector
  sigmoid(1x1 conv(ReLU(1x1 conv(global pool)))) (no BN, no biases) -> x + x * vector;
* head: 3x3 unit, 1x1 convolution to the classes (with bias), interpolated to the input.

The channel-wise multiply is Caffe's ``Scale`` with two bottoms: the (N, C, 1, 1) vector
flattened to (N, C) and applied from axis 0, i.e. broadcast over H x W.  Interpolation is
PSPNet's ``Interp`` with explicit sizes (bilinear, corners aligned, as the release's
``F.interpolate(..., align_corners=True)``); training-only auxiliary heads are left out.

Architecture keys (caffe_models/zoo/bisenet*.yaml)::

    spatial_path: {layers: [[width, kernel], ...] (each stride 2), out: width of the 1x1 unit}
    context_path: {backbone: xception | resnet, stem: {width, kernel, stride, pool: {kernel,
                   stride}}, stages: [[blocks, inner width], ...], strides: [first block's
                   stride per stage], expansion (xception), block: basic (resnet)}
    refine_width: ARM / global-context / refinement width
    ffm: {width, reduction}
    head_width: the head's 3x3 unit

Max pooling is Caffe's (ceil rounding, no padding), which equals PyTorch's 3x3/2 pooling
with padding 1 on even sizes: the input must halve evenly down to the 1/8 map.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import caffe_pb2
from .. import layers as L
from ..netbuilder import NetBuilder
from .resnet import residual_unit
from .units import add_relu, conv, conv_hw, pool_hw

HW = tuple[int, int]
BACKBONES = ("xception", "resnet")


class Feature(NamedTuple):
    """A path's output: its top and the H x W it has at the input size being built."""
    top: str
    hw: HW


# ----------------------------------------------------------------------------- layers

def _sigmoid(name: str, blob: str) -> caffe_pb2.LayerParameter:
    return caffe_pb2.LayerParameter(name=name, type="Sigmoid", bottom=[blob], top=[blob])


def channel_multiply(nb: NetBuilder, name: str, x: str, vector: str) -> str:
    """``x`` (N, C, H, W) times ``vector`` (N, C, 1, 1) channel by channel: the vector
    flattened to (N, C) is a Scale's second bottom from axis 0."""
    flat = nb.add(caffe_pb2.LayerParameter(name=f"{name}/flat", type="Flatten", bottom=[vector],
                                           top=[f"{name}/flat"]))
    layer = caffe_pb2.LayerParameter(name=f"{name}/mul", type="Scale", bottom=[x, flat],
                                     top=[f"{name}/mul"])
    layer.scale_param.axis = 0
    return nb.add(layer)


# ----------------------------------------------------------------------------- paths

def spatial_path(nb: NetBuilder, sp: dict, hw: HW) -> Feature:
    x = "data"
    for i, (width, kernel) in enumerate(sp["layers"]):
        x = conv(nb, f"spatial/conv{i + 1}", x, width, kernel, 2)
        hw = conv_hw(hw, kernel, 2, kernel // 2)
    return Feature(conv(nb, "spatial/out", x, sp["out"], 1), hw)


def _out_width(cp: dict, width: int) -> int:
    """A block's output width: Xception39's blocks expand their inner width, ResNet's basic
    block keeps it."""
    return width * cp["expansion"] if cp["backbone"] == "xception" else width


def _separable(nb: NetBuilder, name: str, bottom: str, cin: int, cout: int, stride: int,
               relu: bool) -> str:
    """Xception39's separable unit: a 3x3 depthwise convolution (no BN, no bias), then a
    1x1 convolution-BN(-ReLU)."""
    dw = nb.add(L.convolution(f"{name}/dw", bottom, f"{name}/dw", cin, 3, stride, group=cin))
    return conv(nb, f"{name}/pw", dw, cout, 1, activation="ReLU" if relu else None)


def _xception_block(nb: NetBuilder, prefix: str, x: str, cp: dict, cin: int, width: int,
                    stride: int) -> str:
    """Three separable units (the first with the stride), summed with the input or, where
    the block changes size, with a separable projection of it."""
    out = _out_width(cp, width)
    shortcut = x
    if stride != 1 or cin != out:
        shortcut = _separable(nb, f"{prefix}/proj", x, cin, out, stride, relu=False)
    y = _separable(nb, f"{prefix}/sep1", x, cin, width, stride, relu=True)
    y = _separable(nb, f"{prefix}/sep2", y, width, width, 1, relu=True)
    y = _separable(nb, f"{prefix}/sep3", y, width, out, 1, relu=False)
    return add_relu(nb, prefix, [shortcut, y])


def _resnet_block(nb: NetBuilder, prefix: str, x: str, cp: dict, cin: int, width: int,
                  stride: int) -> str:
    """ResNet's basic block, the ResNet-18 of this zoo's own unit (resnet.residual_unit), named
    as it is there (res2a_branch2a, ..., res2a)."""
    names = (prefix, (f"{prefix}_branch2a", f"{prefix}_branch2b", f"{prefix}_branch2c"), f"{prefix}_branch1")
    return residual_unit(nb, cp, names, x, cin, width, stride)[0]


def context_path(nb: NetBuilder, cp: dict, hw: HW) -> list[Feature]:
    """The backbone's stem and stages; the output of every stage."""
    kind = cp["backbone"]
    if kind not in BACKBONES:
        raise ValueError(f"context_path backbone must be one of {', '.join(BACKBONES)}, "
                         f"not {kind!r}")
    if kind == "resnet" and cp["block"] != "basic":
        raise ValueError(f"the ResNet context path has basic blocks (ResNet-18/34), "
                         f"not {cp['block']!r}")
    if len(cp["strides"]) != len(cp["stages"]) or len(cp["stages"]) < 3:
        raise ValueError("context_path needs at least three stages and a stride for each")
    block, prefix = (_xception_block, "block") if kind == "xception" else (_resnet_block, "res")
    stem = cp["stem"]
    x = conv(nb, "conv1", "data", stem["width"], stem["kernel"], stem["stride"])
    hw = conv_hw(hw, stem["kernel"], stem["stride"], stem["kernel"] // 2)
    x = nb.add(L.max_pooling("pool1", x, "pool1", stem["pool"]["kernel"], stem["pool"]["stride"]))
    hw = pool_hw(hw, stem["pool"]["kernel"], stem["pool"]["stride"])
    channels, features = stem["width"], []
    for s, ((blocks, width), first_stride) in enumerate(zip(cp["stages"], cp["strides"])):
        for i in range(blocks):
            stride = first_stride if i == 0 else 1
            x = block(nb, f"{prefix}{s + 2}{chr(ord('a') + i)}", x, cp, channels, width, stride)
            hw = conv_hw(hw, 3, stride, 1)
            channels = _out_width(cp, width)
        features.append(Feature(x, hw))
    return features


# ----------------------------------------------------------------------------- modules

def attention_refinement(nb: NetBuilder, name: str, x: str, width: int) -> str:
    fm = conv(nb, f"{name}/conv", x, width, 3)
    pooled = nb.add(L.global_ave_pooling(f"{name}/pool", fm, f"{name}/pool"))
    vector = conv(nb, f"{name}/att", pooled, width, 1, activation=None)
    nb.add(_sigmoid(f"{name}/sigmoid", vector))
    return channel_multiply(nb, name, fm, vector)


def feature_fusion(nb: NetBuilder, spatial: str, context: str, ffm: dict) -> str:
    width, inner = ffm["width"], ffm["width"] // ffm["reduction"]
    x = nb.add(L.concat("ffm/concat", [spatial, context], "ffm/concat"))
    fm = conv(nb, "ffm/conv", x, width, 1)
    v = nb.add(L.global_ave_pooling("ffm/pool", fm, "ffm/pool"))
    v = nb.add(L.convolution("ffm/att1", v, "ffm/att1", inner, 1))
    nb.add(L.activation("ReLU", "ffm/att1/relu", v))
    v = nb.add(L.convolution("ffm/att2", v, "ffm/att2", width, 1))
    nb.add(_sigmoid("ffm/sigmoid", v))
    weighted = channel_multiply(nb, "ffm", fm, v)
    return nb.add(L.eltwise_sum("ffm/sum", [fm, weighted], "ffm/sum"))


def _context(nb: NetBuilder, c8: Feature, c16: Feature, c32: Feature, width: int) -> str:
    """Global context + ARM(1/32) -> 1/16 -> + ARM(1/16) -> 1/8, each refined by a 3x3 unit."""
    g = nb.add(L.global_ave_pooling("global/pool", c32.top, "global/pool"))
    g = conv(nb, "global/conv", g, width, 1)
    last = nb.add(L.interp("global/up", g, "global/up", c32.hw))
    for name, feature, target in (("arm32", c32, c16.hw), ("arm16", c16, c8.hw)):
        fm = attention_refinement(nb, name, feature.top, width)
        fm = nb.add(L.eltwise_sum(f"{name}/sum", [fm, last], f"{name}/sum"))
        up = nb.add(L.interp(f"{name}/up", fm, f"{name}/up", target))
        last = conv(nb, f"{name}/refine", up, width, 3)
    return last


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: HW) -> str:
    spatial = spatial_path(nb, arch["spatial_path"], input_hw)
    c8, c16, c32 = context_path(nb, arch["context_path"], input_hw)[-3:]
    if spatial.hw != c8.hw:
        raise ValueError(f"input {input_hw[0]}x{input_hw[1]}: the spatial path's 1/8 map "
                         f"{spatial.hw} and the context path's {c8.hw} differ; BiSeNet needs "
                         "sizes that halve evenly to 1/8 (e.g. multiples of 8)")
    context = _context(nb, c8, c16, c32, arch["refine_width"])
    fused = feature_fusion(nb, spatial.top, context, arch["ffm"])
    x = conv(nb, "head/conv", fused, arch["head_width"], 3)
    x = nb.add(L.convolution("head/cls", x, "head/cls", num_classes, 1, bias=True))
    return nb.add(L.interp("head/up", x, "head/up", input_hw))
