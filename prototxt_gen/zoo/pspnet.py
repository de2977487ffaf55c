"""PSPNet (Zhao et al., CVPR 2017) as its authors released it in Caffe (hszhao/PSPNet,
pspnet101_cityscapes.prototxt): a dilated ResNet (prototxt_gen.zoo.resnet, output stride 8),
the pyramid pooling module, a 3x3 convolution unit, the classifier and a bilinear up-sampling.

Architecture keys (caffe_models/zoo/pspnet101.yaml)::

    backbone: a ResNet mapping (prototxt_gen.zoo.resnet; PSPNet's deep stem and names)
    pyramid:  {bins: [6, 3, 2, 1], width: 512}   average pooling to b x b, 1x1 convolution
              unit to ``width``, Interp back to the feature size; concatenated after the
              features in the order of ``bins``
    head:     {width: 512, kernel: 3}             the convolution unit on the concatenation

Pooling windows: a b x b grid over an f-wide map has stride floor(f / b) and window
f - (b - 1) * stride, so that Caffe's pooling gives exactly b cells whose last ends on the
map's edge (at the release's 713 x 713, f = 90: windows 15, 30, 45, 90 as released).  The
score is up-sampled by Interp to the input size.  The release's dropout (0.1) only trains.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from . import resnet
from .units import conv


def bin_window(size: int, bins: int) -> tuple[int, int]:
    """(window, stride) of average pooling that cuts ``size`` into ``bins`` cells."""
    if size < bins:
        raise ValueError(f"a {size}-wide feature map cannot be pooled into {bins} bins "
                         "(a larger input size is needed)")
    stride = size // bins
    return size - (bins - 1) * stride, stride


def pyramid_pooling(nb: NetBuilder, x: str, feature: tuple[int, int], bins: list[int], width: int) -> str:
    branches = [x]
    for b in bins:
        (kh, sh), (kw, sw) = bin_window(feature[0], b), bin_window(feature[1], b)
        name = f"{x}_pool{b}"
        y = nb.add(L.ave_pooling(name, x, name, (kh, kw), (sh, sw)))
        y = conv(nb, f"{name}_conv", y, width, 1)
        branches.append(nb.add(L.interp(f"{name}_interp", y, f"{name}_interp", feature)))
    return nb.add(L.concat(f"{x}_concat", branches, f"{x}_concat"))


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    x, _ = resnet.backbone(nb, arch["backbone"])
    feature = resnet.feature_hw(arch["backbone"], input_hw)
    pyramid, head = arch["pyramid"], arch["head"]
    x = pyramid_pooling(nb, x, feature, list(pyramid["bins"]), pyramid["width"])
    x = conv(nb, "conv5_4", x, head["width"], head["kernel"])
    score = conv(nb, "conv6", x, num_classes, 1, activation=None, batch_norm=False)
    return nb.add(L.interp("conv6_interp", score, "conv6_interp", input_hw))
