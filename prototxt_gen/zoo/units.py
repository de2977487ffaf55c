"""Small units the comparison nets are made of, each returning the top it produced.

A convolution unit is ``name`` (top ``name``) -> ``name/bn`` -> ``name/bn_scale`` ->
``name/relu`` (or ``name/prelu``), as every net of the package names it
(:meth:`prototxt_gen.netbuilder.NetBuilder.norm_unit`); nets without BatchNorm (GoogLeNet)
have the convolution's own bias instead.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from ..shapes import conv_output_size, pool_output_size


def conv(nb: NetBuilder, name: str, bottom: str, num_output: int, kernel: int | tuple[int, int],
         stride: int = 1, pad: int | tuple[int, int] | None = None, group: int = 1, dilation: int = 1,
         activation: str | None = "ReLU", batch_norm: bool = True) -> str:
    layer = L.convolution(name, bottom, name, num_output, kernel, stride, pad, group=group, dilation=dilation)
    if batch_norm:
        return nb.norm_unit(layer, activation)
    layer.convolution_param.bias_term = True
    top = nb.add(layer)
    if activation:
        nb.add(L.activation(activation, f"{name}/{activation.lower()}", top))
    return top


def depthwise(nb: NetBuilder, name: str, bottom: str, channels: int, stride: int = 1,
              activation: str | None = "ReLU") -> str:
    """3x3 depthwise convolution: a Convolution with one group per channel."""
    return conv(nb, name, bottom, channels, 3, stride, group=channels, activation=activation)


def classifier(nb: NetBuilder, bottom: str, num_classes: int, name: str = "fc") -> str:
    """Global average pooling and the fully connected classifier."""
    x = nb.add(L.global_ave_pooling("pool", bottom, "pool"))
    return nb.add(L.inner_product(name, x, name, num_classes))


def add_relu(nb: NetBuilder, name: str, bottoms: list[str], activation: str = "ReLU") -> str:
    """Element-wise sum of a residual unit, then its activation in place."""
    top = nb.add(L.eltwise_sum(name, bottoms, name))
    nb.add(L.activation(activation, f"{name}/{activation.lower()}", top))
    return top


# ----------------------------------------------------------------------------- sizes
# The builders that place max-unpooling need the (H, W) each pooling saw; these follow the
# rules of prototxt_gen.shapes, the package's one shape inference.

HW = tuple[int, int]


def conv_hw(hw: HW, kernel: int, stride: int, pad: int) -> HW:
    return tuple(conv_output_size(s, kernel, pad, stride) for s in hw)


def pool_hw(hw: HW, kernel: int, stride: int, pad: int = 0) -> HW:
    return tuple(pool_output_size(s, kernel, pad, stride) for s in hw)


def unpool_size(pooled: HW, before: HW, scale: int = 2) -> HW | None:
    """The explicit output size an Upsample needs to restore ``before``, or None where
    ``scale`` x ``pooled`` already is ``before`` (even sizes)."""
    return None if tuple(scale * s for s in pooled) == tuple(before) else tuple(before)


def check_divisible(what: str, value: int, by: int) -> None:
    if value % by:
        raise ValueError(f"{what} ({value}) must be a multiple of {by}")
