"""GoogLeNet (Szegedy et al., CVPR 2015) as BVLC released it in Caffe: no BatchNorm,
convolutions with bias, LRN after the first pooling and after conv2.

Architecture keys (caffe_models/zoo/googlenet.yaml)::

    stem:  {conv1: width (7x7/2), conv2_reduce: width (1x1), conv2: width (3x3)}
    lrn:   {local_size, alpha, beta}
    pool:  {kernel, stride}        the max-pooling between stages (3x3/2)
    stages: [{module name: [1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj]}, ...]
            (the columns of the paper's Table 1), a max-pooling before each stage

The auxiliary classifiers only train; the deploy net has the main one.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import classifier, conv

COLUMNS = 6


def inception(nb: NetBuilder, name: str, bottom: str, widths: list[int]) -> str:
    if len(widths) != COLUMNS:
        raise ValueError(f"inception {name}: {COLUMNS} widths (1x1, 3x3 reduce, 3x3, 5x5 reduce, "
                         f"5x5, pool proj), got {widths}")
    c1, r3, c3, r5, c5, proj = widths

    def unit(suffix, x, width, kernel):
        return conv(nb, f"{name}/{suffix}", x, width, kernel, batch_norm=False)

    branches = [unit("1x1", bottom, c1, 1),
                unit("3x3", unit("3x3_reduce", bottom, r3, 1), c3, 3),
                unit("5x5", unit("5x5_reduce", bottom, r5, 1), c5, 5)]
    pool = nb.add(L.max_pooling(f"{name}/pool", bottom, f"{name}/pool", 3, 1, pad=1))
    branches.append(unit("pool_proj", pool, proj, 1))
    return nb.add(L.concat(f"{name}/output", branches, f"{name}/output"))


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    stem, lrn, pool = arch["stem"], arch["lrn"], arch["pool"]

    def norm(name, x):
        return nb.add(L.lrn(name, x, name, lrn["local_size"], lrn["alpha"], lrn["beta"]))

    def max_pool(name, x):
        return nb.add(L.max_pooling(name, x, name, pool["kernel"], pool["stride"]))

    x = conv(nb, "conv1/7x7_s2", "data", stem["conv1"], 7, 2, batch_norm=False)
    x = norm("pool1/norm1", max_pool("pool1/3x3_s2", x))
    x = conv(nb, "conv2/3x3_reduce", x, stem["conv2_reduce"], 1, batch_norm=False)
    x = conv(nb, "conv2/3x3", x, stem["conv2"], 3, batch_norm=False)
    x = norm("conv2/norm2", x)
    for s, stage in enumerate(arch["stages"]):
        x = max_pool(f"pool{s + 2}/3x3_s2", x)
        for name, widths in stage.items():
            x = inception(nb, f"inception_{name}", x, list(widths))
    return classifier(nb, x, num_classes, name="loss3/classifier")
