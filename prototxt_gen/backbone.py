"""DF backbone builders: stem, basic and bottleneck blocks, stages (release naming)."""
from __future__ import annotations

import math

from . import layers as L
from .encoding import STAGE_NAMES, STEM_WIDTHS, Backbone, BasicBlock, Block, BottleneckBlock, has_projection
from .netbuilder import NetBuilder

# Total down-sampling of the backbone: stem (2 x /2) and three stages (3 x /2).
OUTPUT_STRIDE = 32


def downsampled(size: int, times: int) -> int:
    """Spatial size after ``times`` stride-2 layers (3x3 pad 1 and 1x1 pad 0 both give ceil(h/2))."""
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


def feature_size(hw: tuple[int, int], stride: int) -> tuple[int, int]:
    times = int(math.log2(stride))
    return downsampled(hw[0], times), downsampled(hw[1], times)


def stem(nb: NetBuilder, bottom: str = "data") -> str:
    top = bottom
    for i, width in enumerate(STEM_WIDTHS, start=1):
        top = nb.conv_unit(f"conv{i}", top, width, kernel=3, stride=2)
    return top


def block(nb: NetBuilder, prefix: str, bottom: str, blk: Block, stride: int, projection: bool) -> str:
    """One residual block named ``prefix`` (e.g. ``res3.2``); returns the block's output top."""
    if isinstance(blk, BasicBlock):
        x = nb.conv_unit(f"{prefix}.conv1", bottom, blk.width, kernel=3, stride=stride)
        x = nb.conv_unit(f"{prefix}.conv2", x, blk.width, kernel=3, relu=False)
    elif isinstance(blk, BottleneckBlock):
        x = nb.conv_unit(f"{prefix}.conv1", bottom, blk.mid, kernel=1)
        x = nb.conv_unit(f"{prefix}.conv2", x, blk.mid, kernel=3, stride=stride)
        x = nb.conv_unit(f"{prefix}.conv3", x, blk.out, kernel=1, relu=False)
    else:  # pragma: no cover - encodings are validated on construction
        raise TypeError(f"not a block: {blk!r}")
    shortcut = bottom
    if projection:
        shortcut = nb.conv_unit(f"{prefix}.skipConv", bottom, blk.out, kernel=1, stride=stride,
                                relu=False, bn_name=f"{prefix}skipConv")
    top = nb.add(L.eltwise_sum(f"{prefix}.sum", [x, shortcut], f"{prefix}.sum"))
    nb.add(L.relu(f"{prefix}.relu", top))
    return top


def backbone(nb: NetBuilder, bb: Backbone, bottom: str = "data") -> list[str]:
    """Stem and all stages; returns the output top of each stage (res2, res3, res4)."""
    x = stem(nb, bottom)
    stage_tops = []
    for s, stage in enumerate(bb.stages):
        for i, blk in enumerate(stage):
            x = block(nb, f"{STAGE_NAMES[s]}.{i + 1}", x, blk, stride=2 if i == 0 else 1,
                      projection=has_projection(bb, s, i))
        stage_tops.append(x)
    return stage_tops
