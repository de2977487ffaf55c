"""ESPNet (Mehta et al., ECCV 2018): the full net (ESPNet-C and the light-weight decoder).

The ESP module reduces its input with a convolution to ``n = out // K`` channels (1x1, or
3x3/2 where it down-samples), splits that into K parallel 3x3 convolutions dilated 1, 2, 4,
... (the first of ``out - (K - 1) n`` channels, the rest of ``n``), adds the dilated outputs
hierarchically (d2, d2 + d4, d2 + d4 + d8, ...: hierarchical feature fusion, against the
gridding of large dilations), concatenates them, adds the input where the widths match, then
BatchNorm and PReLU.  Every convolution is bias-free, as in the authors' code
(sacmehta/ESPNet, train/Model.py), whose module paths name the layers here.

Architecture keys (caffe_models/zoo/espnet.yaml)::

    level1: 16                        3x3/2 convolution, BatchNorm, PReLU
    level2: {width: 64, modules: 2}   a down-sampling ESP module, then ``modules`` (p) more
    level3: {width: 128, modules: 8}  the same at 1/8 (q)
    dilations: [1, 2, 4, 8, 16]       the K branches of every ESP module

Input reinforcement: the image, average-pooled (3x3/2, pad 1) once and twice, is concatenated
with the level-1 output and with the level-2 outputs.  Caffe's pooling rounds its output size
up where the authors' PyTorch rounds down, so each pooled image is cut to the map it joins
(Crop, offset 0: the first windows are the same in both).

Decoder: the 1/8 features -> 1x1 to the classes, BatchNorm, a 2x2/2 full convolution
(Deconvolution) to 1/4; concatenated with the 1/4 features projected to the classes (1x1),
BatchNorm + PReLU, an ESP module without the residual sum; 2x2/2 full convolution, BatchNorm +
PReLU to 1/2; concatenated with the level-1 features, a 3x3 convolution unit; a last 2x2/2 full
convolution to the input size.  Sizes must be multiples of 8.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import check_divisible, conv

PRELU = "PReLU"


def _bn_prelu(nb: NetBuilder, name: str, x: str) -> str:
    """BatchNorm + PReLU on a blob no convolution produced (BR in the authors' code)."""
    top = nb.batch_norm_unit(name, x)
    nb.add(L.activation(PRELU, f"{name}/prelu", top))
    return top


def _plain(nb: NetBuilder, name: str, x: str, out: int, kernel: int, stride: int = 1,
           dilation: int = 1) -> str:
    """A convolution alone (bias-free, no BatchNorm: the ESP branches are normalised after
    the concatenation)."""
    return nb.add(L.convolution(name, x, name, out, kernel, stride, dilation=dilation))


def esp_module(nb: NetBuilder, name: str, x: str, out: int, dilations: list[int], *,
               down: bool = False, residual: bool = True) -> str:
    k = len(dilations)
    n = out // k
    reduced = _plain(nb, f"{name}.c1", x, n, 3 if down else 1, 2 if down else 1)
    branches = [_plain(nb, f"{name}.d{d}", reduced, out - (k - 1) * n if i == 0 else n, 3, dilation=d)
                for i, d in enumerate(dilations)]
    fused = branches[:2]
    for i in range(2, k):
        fused.append(nb.add(L.eltwise_sum(f"{name}.add{i}", [fused[-1], branches[i]], f"{name}.add{i}")))
    merged = nb.add(L.concat(f"{name}.cat", fused, f"{name}.cat"))
    if residual:
        merged = nb.add(L.eltwise_sum(f"{name}.sum", [x, merged], f"{name}.sum"))
    return _bn_prelu(nb, f"{name}.bn", merged)


def _input_projection(nb: NetBuilder, name: str, x: str, like: str) -> str:
    """3x3/2 average pooling (pad 1) cut to ``like``'s H x W."""
    pool = L.ave_pooling(f"{name}/pool", x, f"{name}/pool", (3, 3), (2, 2))
    pool.pooling_param.pad = 1
    return nb.add(L.crop(name, nb.add(pool), like, name, offset=0))


def _level(nb: NetBuilder, prefix: str, x: str, spec: dict, dilations: list[int]) -> tuple[str, str]:
    """A down-sampling ESP module and ``modules`` residual ones: (the first's top, the last's)."""
    first = esp_module(nb, f"encoder.{prefix}_0", x, spec["width"], dilations, down=True, residual=False)
    y = first
    for i in range(spec["modules"]):
        y = esp_module(nb, f"encoder.{prefix}.{i}", y, spec["width"], dilations)
    return first, y


def _encoder(nb: NetBuilder, arch: dict) -> tuple[str, str, str]:
    """ESPNet-C up to its concatenations: (1/2, 1/4, 1/8 features)."""
    dilations = list(arch["dilations"])
    if len(dilations) < 2:
        raise ValueError("an ESP module needs at least two dilated branches")
    level1 = conv(nb, "encoder.level1", "data", arch["level1"], 3, 2, activation=PRELU)
    sample1 = _input_projection(nb, "encoder.sample1", "data", level1)
    cat1 = _bn_prelu(nb, "encoder.b1", nb.add(L.concat("encoder.cat1", [level1, sample1], "encoder.cat1")))
    first2, level2 = _level(nb, "level2", cat1, arch["level2"], dilations)
    sample2 = _input_projection(nb, "encoder.sample2", sample1, first2)
    cat2 = nb.add(L.concat("encoder.cat2", [level2, first2, sample2], "encoder.cat2"))
    cat2 = _bn_prelu(nb, "encoder.b2", cat2)
    first3, level3 = _level(nb, "level3", cat2, arch["level3"], dilations)
    cat3 = _bn_prelu(nb, "encoder.b3", nb.add(L.concat("encoder.cat3", [first3, level3], "encoder.cat3")))
    return cat1, cat2, cat3


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    for side in input_hw:
        check_divisible("ESPNet's input size", side, 8)
    cat1, cat2, cat3 = _encoder(nb, arch)
    c = num_classes
    x = conv(nb, "encoder.classifier", cat3, c, 1, activation=None)   # + br: BatchNorm, no PReLU
    up3 = nb.add(L.deconvolution("up_l3", x, "up_l3", c, 2, 2))
    proj2 = _plain(nb, "level3_C", cat2, c, 1)
    x = nb.add(L.concat("cat_l2_l3", [proj2, up3], "cat_l2_l3"))
    x = _bn_prelu(nb, "combine_l2_l3.0", x)
    x = esp_module(nb, "combine_l2_l3.1", x, c, list(arch["dilations"]), residual=False)
    x = nb.norm_unit(L.deconvolution("up_l2", x, "up_l2", c, 2, 2), PRELU)
    x = nb.add(L.concat("cat_l1", [x, cat1], "cat_l1"))
    x = conv(nb, "conv", x, c, 3, activation=PRELU)
    return nb.add(L.deconvolution("classifier", x, "classifier", c, 2, 2))
