"""DeepLab-v2 (Chen et al., TPAMI 2017) with ResNet-101, as the authors' Caffe release
(deeplab-public-ver2) builds it: the dilated ResNet (prototxt_gen.zoo.resnet, output stride
8), atrous spatial pyramid pooling as K parallel 3x3 classifiers dilated 6, 12, 18, 24 whose
scores are summed, and a bilinear up-sampling (Interp) to the input size.

Architecture keys (caffe_models/zoo/deeplabv2.yaml)::

    backbone: a ResNet mapping (prototxt_gen.zoo.resnet; ResNet-101's names)
    aspp:     {rates: [6, 12, 18, 24]}   one 3x3 convolution (with bias) to the classes each
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from . import resnet
from .units import conv


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    x, _ = resnet.backbone(nb, arch["backbone"])
    rates = list(arch["aspp"]["rates"])
    if not rates:
        raise ValueError("aspp needs at least one rate")
    scores = [conv(nb, f"fc1_c{i}", x, num_classes, 3, dilation=rate, activation=None, batch_norm=False)
              for i, rate in enumerate(rates)]
    score = nb.add(L.eltwise_sum("fc1", scores, "fc1")) if len(scores) > 1 else scores[0]
    return nb.add(L.interp("fc1_interp", score, "fc1_interp", input_hw))
