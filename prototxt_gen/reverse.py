"""Recover the architecture encoding (and decoder width controllers) from a net in the
release format - the inverse of the generator.

The release names its layers systematically: stem ``conv1``/``conv2``; blocks
``res{2,3,4}.{i}.conv1..conv3`` (two convolutions: basic block of that width; three:
bottleneck 1x1 mid -> 3x3 mid -> 1x1 out); a segmentation decoder's width controllers are
the convolutions ``Decoder_wc3``/``Decoder_wc4``/``Decoder_wc5``, its classes the outputs of
``Decoder_score``, and the full-resolution head up-samples with ``Decoder_score.up8``
(absent in the ``-d8`` form).  Widths equal to the number of classes are written ``K``.
"""
from __future__ import annotations

import re

from . import caffe_pb2
from .encoding import (STAGE_NAMES, STEM_WIDTHS, Backbone, BasicBlock, BottleneckBlock,
                       EncodingError, SegmentationNet)

_BLOCK_CONV = re.compile(r"^(res[234])\.(\d+)\.conv(\d)$")


class RecoveryError(EncodingError):
    """The net does not follow the release's layout; the message says what is missing."""


def _convolutions(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    # TRAIN/TEST copies of a layer share a name; the convolutions are never phase-specific.
    return {layer.name: layer for layer in net.layer if layer.type == "Convolution"}


def recover_backbone(net: caffe_pb2.NetParameter) -> Backbone:
    convs = _convolutions(net)
    for name, width in zip(("conv1", "conv2"), STEM_WIDTHS):
        if name not in convs:
            raise RecoveryError(f"no stem convolution {name!r}: not a release-format net")
        if convs[name].convolution_param.num_output != width:
            raise RecoveryError(f"stem {name!r} has {convs[name].convolution_param.num_output} "
                                f"outputs, the search space fixes {width}")
    blocks: dict[tuple[str, int], dict[int, int]] = {}
    for name, layer in convs.items():
        if m := _BLOCK_CONV.match(name):
            key = (m.group(1), int(m.group(2)))
            blocks.setdefault(key, {})[int(m.group(3))] = layer.convolution_param.num_output
    stages = []
    for stage in STAGE_NAMES:
        numbers = sorted(i for s, i in blocks if s == stage)
        if not numbers:
            raise RecoveryError(f"no blocks named {stage}.<i>.conv<j>: not a release-format net")
        if numbers != list(range(1, len(numbers) + 1)):
            raise RecoveryError(f"{stage}: block numbers {numbers} are not 1..{len(numbers)}")
        stage_blocks = []
        for i in numbers:
            widths = blocks[(stage, i)]
            where = f"{stage}.{i}"
            if sorted(widths) == [1, 2]:
                if widths[1] != widths[2]:
                    raise RecoveryError(f"{where}: a basic block's two convolutions differ in "
                                        f"width ({widths[1]} vs {widths[2]})")
                stage_blocks.append(BasicBlock(widths[1]))
            elif sorted(widths) == [1, 2, 3]:
                if widths[1] != widths[2]:
                    raise RecoveryError(f"{where}: a bottleneck's 1x1 and 3x3 differ in width "
                                        f"({widths[1]} vs {widths[2]})")
                stage_blocks.append(BottleneckBlock(widths[2], widths[3]))
            else:
                raise RecoveryError(f"{where}: convolutions conv{sorted(widths)} are neither a "
                                    "basic (conv1, conv2) nor a bottleneck (conv1..conv3) block")
        stages.append(tuple(stage_blocks))
    return Backbone(tuple(stages))


def recover_encoding(net: caffe_pb2.NetParameter) -> Backbone | SegmentationNet:
    """The backbone, or for a DF-Seg net the segmentation encoding with its WC and -d8."""
    backbone = recover_backbone(net)
    convs = _convolutions(net)
    wc_names = ("Decoder_wc3", "Decoder_wc4", "Decoder_wc5")
    present = [name in convs for name in wc_names]
    if not any(present):
        return backbone
    if not all(present):
        missing = [n for n, p in zip(wc_names, present) if not p]
        raise RecoveryError(f"decoder is missing {', '.join(missing)}")
    if "Decoder_score" not in convs:
        raise RecoveryError("decoder has no Decoder_score convolution (the class scores)")
    num_classes = convs["Decoder_score"].convolution_param.num_output
    wc = tuple("K" if (w := convs[n].convolution_param.num_output) == num_classes else w
               for n in wc_names)
    d8 = not any(layer.name == "Decoder_score.up8" for layer in net.layer)
    return SegmentationNet(backbone, wc, num_classes=num_classes, d8=d8)
