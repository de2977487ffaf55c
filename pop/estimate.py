"""Lat(x) = stem + Σ blocks + head (paper Section 3.2): where each block of a backbone sits
(input size, channels, stride, projection) and the latency model that prices it.

The estimate here and the LUT keys of a backbone (:func:`pop.lut.backbone_keys`) walk it the
same way: :func:`block_placements` is that walk's one definition.
"""
from __future__ import annotations

from typing import Iterator

from prototxt_gen.encoding import Backbone, Block, STAGE_NAMES

from .space_config import SpaceConfig

__all__ = ["STEM_OUT", "LatencyModel", "block_placements", "conv_out", "estimate_backbone", "head_channels",
           "stage_resolutions"]

STEM_OUT = 64  # conv2 of the fixed stem


def conv_out(h: int) -> int:
    """3x3/pad 1/stride 2 (and 1x1/stride 2): ceil(h / 2)."""
    return (h + 1) // 2


def stage_resolutions(input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Spatial size entering each stage (after the stem's two stride-2 convs) and after it."""
    h, w = conv_out(conv_out(input_size[0])), conv_out(conv_out(input_size[1]))
    sizes = [(h, w)]
    for _ in STAGE_NAMES:
        h, w = conv_out(h), conv_out(w)
        sizes.append((h, w))
    return sizes


# A latency model answers three questions (milliseconds).  pop.lut.LatencyTable implements it
# from measurements; tests may pass any object with these methods.
class LatencyModel:
    def stem(self, input_size: tuple[int, int]) -> float: ...
    def block(self, block: Block, in_channels: int, in_hw: tuple[int, int], stride: int, projection: bool) -> float: ...
    def head(self, in_channels: int, in_hw: tuple[int, int], num_classes: int) -> float: ...


def block_placements(config: SpaceConfig, backbone: Backbone) -> Iterator[tuple[Block, int, tuple[int, int], int, bool]]:
    """(block, in_channels, in_hw, stride, projection) of every block, in network order: the
    first block of a stage halves the size, and a block needs a projection shortcut when it is
    a stage's first or differs from the block before it."""
    sizes = stage_resolutions(config.input_size)
    channels = STEM_OUT
    for s, stage in enumerate(backbone.stages):
        previous = None
        for i, blk in enumerate(stage):
            first = i == 0
            yield blk, channels, sizes[s] if first else sizes[s + 1], 2 if first else 1, first or blk != previous
            channels, previous = blk.out, blk


def head_channels(backbone: Backbone) -> int:
    """Channels entering the head: the last block's output (the stem's when there is none)."""
    blocks = [blk for stage in backbone.stages for blk in stage]
    return blocks[-1].out if blocks else STEM_OUT


def estimate_backbone(config: SpaceConfig, lut: LatencyModel, backbone: Backbone) -> float:
    """Lat(x) = stem + Σ blocks + head (paper Section 3.2)."""
    total = lut.stem(config.input_size)
    for placement in block_placements(config, backbone):
        total += lut.block(*placement)
    return total + lut.head(head_channels(backbone), stage_resolutions(config.input_size)[-1], config.num_classes)
