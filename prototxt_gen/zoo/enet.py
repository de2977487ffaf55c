"""ENet (Paszke et al., 2016), Table 1 of the paper.

Every bottleneck is a 1x1 projection to ``out / projection_ratio`` channels, a main
convolution and a 1x1 expansion, each with BatchNorm (the expansion without activation),
added to the input and activated.  The main convolution is

* regular: 3x3;   {dilated: d}: 3x3 with dilation d;   {asymmetric: k}: kx1 then 1xk;
* downsampling: the projection is 2x2/2; the input is max-pooled (keeping the indices) and
  padded with zero channels (``0 * x`` copies) to ``out``;
* upsampling: a 3x3/2 full convolution (Caffe's Deconvolution, cut to 2H x 2W with Crop as
  Torch's adj = 1 does); the input is projected to ``out`` by a 1x1 convolution and
  max-unpooled (``Upsample``) with the indices of the matching downsampling.

Architecture keys (caffe_models/zoo/enet.yaml)::

    initial:  {conv: width}   3x3/2 convolution concatenated with a 2x2/2 max-pooling of the
                              image, then BatchNorm and PReLU
    projection_ratio: 4
    stages: [{name, out, activation: PReLU | ReLU, bottlenecks: [kind, ...]}, ...]

The net ends in a 2x2/2 full convolution to the classes.  Spatial dropout only trains.
"""
from __future__ import annotations

from .. import layers as L
from ..netbuilder import NetBuilder
from .units import add_relu, conv, conv_hw, pool_hw, unpool_size

KINDS = ("regular", "downsampling", "upsampling", "dilated", "asymmetric")


def _kind(spec) -> tuple[str, int]:
    """"regular" / {"dilated": 2} / {"asymmetric": 5} -> (kind, its number or 1)."""
    if isinstance(spec, dict) and len(spec) == 1:
        (kind, value), = spec.items()
    else:
        kind, value = spec, 1
    needs_value = kind in ("dilated", "asymmetric")
    if kind not in KINDS or not isinstance(value, int) or needs_value != isinstance(spec, dict):
        raise ValueError(f"bottleneck {spec!r}: expected one of {', '.join(KINDS)} "
                         "(dilated and asymmetric as {dilated: D} / {asymmetric: K})")
    return kind, value


def _main_conv(nb: NetBuilder, name: str, x: str, width: int, kind: str, value: int, act: str) -> str:
    if kind == "asymmetric":
        pad = value // 2
        nb.add(L.convolution(f"{name}/conv2a", x, f"{name}/conv2a", width, (value, 1), pad=(pad, 0)))
        return conv(nb, f"{name}/conv2", f"{name}/conv2a", width, (1, value), pad=(0, pad), activation=act)
    return conv(nb, f"{name}/conv2", x, width, 3, dilation=value, activation=act)


def regular(nb: NetBuilder, name: str, x: str, out: int, inner: int, kind: str, value: int, act: str) -> str:
    ext = conv(nb, f"{name}/conv1", x, inner, 1, activation=act)
    ext = _main_conv(nb, name, ext, inner, kind, value, act)
    ext = conv(nb, f"{name}/conv3", ext, out, 1, activation=None)
    return add_relu(nb, f"{name}/sum", [x, ext], act)


def downsampling(nb: NetBuilder, name: str, x: str, in_channels: int, out: int, inner: int,
                 act: str) -> tuple[str, str]:
    """Returns the output top and the pooling mask top."""
    copies, rest = divmod(out - in_channels, in_channels)
    if rest or copies < 0:
        raise ValueError(f"{name}: zero padding {in_channels} to {out} channels needs a multiple")
    ext = conv(nb, f"{name}/conv1", x, inner, 2, stride=2, pad=0, activation=act)
    ext = conv(nb, f"{name}/conv2", ext, inner, 3, activation=act)
    ext = conv(nb, f"{name}/conv3", ext, out, 1, activation=None)
    pool, mask = f"{name}/pool", f"{name}/pool_mask"
    nb.add(L.max_pooling(pool, x, [pool, mask], 2, 2))
    main = pool
    if copies:
        zeros = nb.add(L.zeros_like(f"{name}/zeros", pool, f"{name}/zeros"))
        main = nb.add(L.concat(f"{name}/pad", [pool] + [zeros] * copies, f"{name}/pad"))
    return add_relu(nb, f"{name}/sum", [main, ext], act), mask


def upsampling(nb: NetBuilder, name: str, x: str, out: int, inner: int, act: str,
               mask: str, pooled: tuple[int, int], before: tuple[int, int]) -> str:
    main = conv(nb, f"{name}/main", x, out, 1, activation=None)
    main = nb.add(L.upsample(f"{name}/unpool", main, mask, f"{name}/unpool", unpool_size(pooled, before)))
    ext = conv(nb, f"{name}/conv1", x, inner, 1, activation=act)
    ext = nb.norm_unit(L.deconvolution(f"{name}/deconv", ext, f"{name}/deconv", inner, 3, 2), act)
    ext = nb.add(L.crop(f"{name}/crop", ext, main, f"{name}/crop", offset=1))
    ext = conv(nb, f"{name}/conv3", ext, out, 1, activation=None)
    return add_relu(nb, f"{name}/sum", [main, ext], act)


def _initial(nb: NetBuilder, width: int, input_hw: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    hw = conv_hw(input_hw, 3, 2, 1)
    if hw != pool_hw(input_hw, 2, 2):
        raise ValueError(f"input {input_hw[0]}x{input_hw[1]}: ENet needs even sizes (a multiple of 8)")
    x = nb.add(L.convolution("initial/conv", "data", "initial/conv", width, 3, 2, bias=True))
    pool = nb.add(L.max_pooling("initial/pool", "data", "initial/pool", 2, 2))
    x = nb.add(L.concat("initial/concat", [x, pool], "initial/concat"))
    x = nb.batch_norm_unit("initial", x)
    nb.add(L.activation("PReLU", "initial/prelu", x))
    return x, hw


def build(nb: NetBuilder, arch: dict, num_classes: int, input_hw: tuple[int, int]) -> str:
    width = arch["initial"]["conv"]
    x, hw = _initial(nb, width, input_hw)
    channels, ratio = width + 3, arch["projection_ratio"]
    pools = []           # (mask, pooled HxW, HxW before) of each downsampling not yet undone
    for stage in arch["stages"]:
        out, act = stage["out"], stage["activation"]
        for i, spec in enumerate(stage["bottlenecks"]):
            name, (kind, value) = f"bottleneck{stage['name']}.{i}", _kind(spec)
            inner = out // ratio
            if kind == "downsampling":
                pooled = pool_hw(hw, 2, 2)
                if pooled != conv_hw(hw, 2, 2, 0):
                    raise ValueError(f"{name}: a {hw[0]}x{hw[1]} map cannot be halved exactly; "
                                     "ENet needs input sizes that are multiples of 8")
                x, mask = downsampling(nb, name, x, channels, out, inner, act)
                pools.append((mask, pooled, hw))
                hw = pooled
            elif kind == "upsampling":
                if not pools:
                    raise ValueError(f"{name}: no downsampling left whose indices it could use")
                mask, pooled, before = pools.pop()
                x = upsampling(nb, name, x, out, inner, act, mask, pooled, before)
                hw = before
            else:
                if channels != out:
                    raise ValueError(f"{name}: a {kind} bottleneck keeps the width ({channels} != {out})")
                x = regular(nb, name, x, out, inner, kind, value, act)
            channels = out
    return nb.add(L.deconvolution("fullconv", x, "fullconv", num_classes, 2, 2, bias=True))
