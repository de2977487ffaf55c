"""Recover the encoding (and WC setting) from a release-format prototxt.

Blocks are found by the release's layer names: ``resS.I.conv1..conv3`` give a block's
type and widths; ``Decoder_wc3/4/5`` the width controllers, ``Decoder_score`` the number of
classes and the absence of ``Decoder_score.up8`` a ``-d8`` head.  Works with and without
merged BN (only convolutions are read).
"""
from __future__ import annotations

import re

from . import caffe_pb2
from .encoding import STAGE_NAMES, Backbone, BasicBlock, BottleneckBlock, EncodingError, SegmentationNet

_BLOCK_CONV = re.compile(r"^(res[234])\.(\d+)\.conv([123])$")


def _convolutions(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    return {l.name: l for l in net.layer if l.type in ("Convolution", "Deconvolution")}


def backbone_of(net: caffe_pb2.NetParameter) -> Backbone:
    widths: dict[tuple[int, int], dict[int, int]] = {}
    for name, layer in _convolutions(net).items():
        m = _BLOCK_CONV.match(name)
        if m:
            stage = STAGE_NAMES.index(m.group(1))
            widths.setdefault((stage, int(m.group(2))), {})[int(m.group(3))] = layer.convolution_param.num_output
    if not widths:
        raise EncodingError("no release-format blocks (resS.I.convK layers) in this net")
    stages: list[list] = [[] for _ in STAGE_NAMES]
    for (stage, index) in sorted(widths):
        convs = widths[(stage, index)]
        if len(stages[stage]) != index - 1:
            raise EncodingError(f"{STAGE_NAMES[stage]}.{index}: blocks are not numbered consecutively")
        if 3 in convs:
            stages[stage].append(BottleneckBlock(convs[1], convs[3]))
        elif 2 in convs:
            stages[stage].append(BasicBlock(convs[2]))
        else:
            raise EncodingError(f"{STAGE_NAMES[stage]}.{index}: block without conv2")
    return Backbone(tuple(tuple(s) for s in stages))


def encoding_of(net: caffe_pb2.NetParameter) -> Backbone | SegmentationNet:
    bb = backbone_of(net)
    convs = _convolutions(net)
    if "Decoder_score" not in convs:
        return bb
    num_classes = convs["Decoder_score"].convolution_param.num_output
    wc = []
    for i in (3, 4, 5):
        layer = convs.get(f"Decoder_wc{i}")
        if layer is None:
            raise EncodingError(f"segmentation net without Decoder_wc{i}")
        width = layer.convolution_param.num_output
        wc.append("K" if width == num_classes else width)
    return SegmentationNet(bb, tuple(wc), num_classes=num_classes, d8="Decoder_score.up8" not in convs)
