"""DF-Seg decoder builders: pyramid pooling, width controllers, fusion nodes, score head.

Structure (Fig. 6 of the paper, names as released)::

    res4 out -> psp.pool{1..4} (+conv, Interp) -> psp.concat -> psp.concat.conv
    res2 out -> Decoder_wc3 (C3)     res3 out -> Decoder_wc4 (C4)     psp -> Decoder_wc5 (C5)
    Decoder4_4: proj(wc5 -> C4), x2 up, concat with wc4, 3x3 conv (C4)
    Decoder3_3: proj(4_4 -> C3), x2 up, concat with wc3, 3x3 conv (C3)
    Decoder_score: 3x3 conv (K classes, BN, no ReLU) at 1/8; Decoder_score.up8 unless -d8
"""
from __future__ import annotations

from dataclasses import dataclass

from . import layers as L
from .backbone import OUTPUT_STRIDE, feature_size
from .netbuilder import NetBuilder


@dataclass(frozen=True)
class InterpSizes:
    """Interp output sizes of the pyramid pooling: one per phase rule, or one for all phases."""

    train: tuple[int, int] | None
    test: tuple[int, int] | None
    single: tuple[int, int] | None = None


def pyramid_pooling(nb: NetBuilder, bottom: str, channels: int, bins: tuple[int, ...],
                    train_crop: tuple[int, int], interp_sizes: InterpSizes) -> str:
    """PSPNet pyramid pooling; pooling windows follow the training crop, as in the release
    (1024x1024 crops -> 32x32 features -> windows 32, 16, 8, 4 for bins 1, 2, 4, 8)."""
    train_feature = feature_size(train_crop, OUTPUT_STRIDE)
    branch_width = channels // len(bins)
    branches = [bottom]
    for i, bin_ in enumerate(bins, start=1):
        name = f"psp.pool{i}"
        window = (max(1, train_feature[0] // bin_), max(1, train_feature[1] // bin_))
        x = nb.add(L.ave_pooling(name, bottom, name, kernel=window, stride=window))
        x = nb.conv_unit(f"{name}.conv", x, branch_width, kernel=1)
        if interp_sizes.single is not None:
            nb.add(L.interp(f"{name}.interp", x, f"{name}.interp", interp_sizes.single))
        else:
            nb.add(L.interp(f"{name}.interp", x, f"{name}.interp", interp_sizes.train, phase=L.TRAIN))
            nb.add(L.interp(f"{name}.interp", x, f"{name}.interp", interp_sizes.test, phase=L.TEST))
        branches.append(f"{name}.interp")
    x = nb.add(L.concat("psp.concat", branches, "psp.concat"))
    return nb.conv_unit("psp.concat.conv", x, channels, kernel=3)


def fusion_node(nb: NetBuilder, name: str, deep: str, skip: str, width: int) -> str:
    """Project the deeper feature to ``width``, up-sample x2, concatenate, fuse with a 3x3 conv."""
    x = nb.conv_unit(f"{name}.proj", deep, width, kernel=1)
    up = nb.add(L.bilinear_upsample(f"{name}.proj/up2", x, f"{name}.proj/up2", width, 2))
    x = nb.add(L.concat(f"{name}.concat", [skip, up], f"{name}.concat"))
    return nb.conv_unit(f"{name}.conv1", x, width, kernel=3)


def decoder(nb: NetBuilder, stage_tops: list[str], psp_top: str, wc: tuple[int, int, int],
            num_classes: int, d8: bool) -> tuple[str, str | None]:
    """Returns (score at 1/8, score up-sampled x8 or None for -d8)."""
    c3, c4, c5 = wc
    wc3 = nb.conv_unit("Decoder_wc3", stage_tops[0], c3, kernel=1)
    wc4 = nb.conv_unit("Decoder_wc4", stage_tops[1], c4, kernel=1)
    wc5 = nb.conv_unit("Decoder_wc5", psp_top, c5, kernel=1)
    x = fusion_node(nb, "Decoder4_4", wc5, wc4, c4)
    x = fusion_node(nb, "Decoder3_3", x, wc3, c3)
    score = nb.conv_unit("Decoder_score", x, num_classes, kernel=3, relu=False)
    if d8:
        return score, None
    up = nb.add(L.bilinear_upsample("Decoder_score.up8", score, "Decoder_score.up8", num_classes, 8))
    return score, up
