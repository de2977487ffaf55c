"""SegNet (Badrinarayanan et al., TPAMI 2017): VGG-16's convolutions as the encoder, a mirrored
decoder that max-unpools with the encoder's pooling indices, every convolution 3x3 with
BatchNorm and ReLU but the last, which scores the classes.

Architecture keys (caffe_models/zoo/segnet.yaml)::

    encoder: [[widths of a stage's convolutions], ...]   each stage ends in a 2x2/2 max-pooling
    decoder: [[widths], ...]   one per encoder stage, deepest first: Upsample with that stage's
                               pooling mask, then its convolutions; the classifier follows the last

Names follow the SegNet release: conv1_1 ... pool5 (top pool5_mask the indices),
upsample5, conv5_3_D ... conv1_1_D (the classifier).
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import conv, pool_hw, unpool_size


def _encoder(nb: NetBuilder, stages: list, input_hw: tuple[int, int]) -> tuple[str, list]:
    """Returns the deepest top and, per stage, (mask top, pooled HxW, HxW before pooling)."""
    x, hw, pools = "data", tuple(input_hw), []
    for s, widths in enumerate(stages, start=1):
        for i, width in enumerate(widths, start=1):
            x = conv(nb, f"conv{s}_{i}", x, width, 3)
        pooled = pool_hw(hw, 2, 2)
        nb.add(L.max_pooling(f"pool{s}", x, [f"pool{s}", f"pool{s}_mask"], 2, 2))
        pools.append((f"pool{s}_mask", pooled, hw))
        x, hw = f"pool{s}", pooled
    return x, pools


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    encoder, decoder = arch["encoder"], arch["decoder"]
    if len(decoder) != len(encoder):
        raise ValueError(f"decoder has {len(decoder)} stages, encoder {len(encoder)}: SegNet mirrors them")
    x, pools = _encoder(nb, encoder, input_hw)
    for d, widths in enumerate(decoder):
        s = len(encoder) - d
        mask, pooled, before = pools[s - 1]
        x = nb.add(L.upsample(f"upsample{s}", x, mask, f"upsample{s}", unpool_size(pooled, before)))
        last_stage = d == len(decoder) - 1
        count = len(widths) + (1 if last_stage else 0)      # the classifier closes the last stage
        for i, width in enumerate(widths):
            x = conv(nb, f"conv{s}_{count - i}_D", x, width, 3)
    return conv(nb, "conv1_1_D", x, num_classes, 3, activation=None, batch_norm=False)
