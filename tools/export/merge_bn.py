"""Fold BatchNorm + Scale into the preceding Convolution / InnerProduct: a caffemodel and its
prototxt become the merged-BN pair the authors released (``df1seg_mergebn.prototxt``).  The
command line is ``python -m tools.merge_bn``.

For y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta the merged convolution has
weights W * a and bias (b - mean) * a + beta, a = gamma / sqrt(var + eps), per output channel.
Caffe's BatchNorm stores its moving averages multiplied by a scale factor (blob 2): they are
divided by it first, a factor of 0 being treated as 1.  eps comes from each layer.

The merged prototxt drops the BatchNorm and Scale layers, turns the convolution's bias on and
renames the BN/Scale output blob to the convolution's own top everywhere it is used (in-place
ReLU, Eltwise and Concat bottoms, ...), as the released merged files do.  A BatchNorm that
cannot be folded (it follows a Concat, a Pooling, a ShuffleChannel, as in ShuffleNet, or a
convolution whose output another layer also reads) stays in the merged net with its Scale and
weights, and `warn` is told why.

Weights are read and written with dfseg's schema, so caffemodels of the authors' Caffe fork
(Interp at field 148, ShuffleChannel at 149) load as they are.  A caffemodel that does not
fit its prototxt is refused with every mismatching layer and blob shape listed (the shapes
from the layer catalogue, prototxt_gen.shapes.catalogue).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from google.protobuf import text_format

from dfseg.base.atomic import atomic_write_bytes, atomic_write_group
from dfseg.base.errors import InputError
from prototxt_gen import caffe_pb2
from prototxt_gen.netio import read_net
from prototxt_gen.shapes import ShapeError, param_shapes
from tools.export import caffemodel

__all__ = ["Fold", "MergeError", "Weights", "caffemodel_of", "check_weights_fit",
           "expected_param_shapes", "merge_files", "merge_net", "merge_weights", "plan_folds",
           "read_caffemodel", "write_caffemodel"]

FOLDABLE_TYPES = ("Convolution", "InnerProduct", "Deconvolution")
# Layers whose top has as many channels as their first bottom.
CHANNEL_PRESERVING = {"BatchNorm", "Scale", "Bias", "ReLU", "PReLU", "ELU", "Sigmoid", "TanH",
                      "AbsVal", "Power", "Exp", "Log", "Clip", "Dropout", "Pooling", "Interp",
                      "LRN", "Softmax", "Crop", "ShuffleChannel", "Eltwise", "Split", "Normalize"}

Weights = dict[str, list[np.ndarray]]


class MergeError(InputError, ValueError):
    """The net or its weights cannot be merged; the message names the layers concerned."""


@dataclass(frozen=True)
class Fold:
    """One Convolution/InnerProduct with the BatchNorm (and Scale) folded into it."""
    conv: str
    batch_norm: str
    scale: str | None
    eps: float


# ---------------------------------------------------------------- weights files

def read_caffemodel(path: str | Path) -> Weights:
    """{layer name: [float64 arrays]} of a binary caffemodel (new-style `layer` or V1 `layers`).

    The reading is tools.export.caffemodel's; float64 keeps the folding arithmetic exact enough to
    match Caffe's own merged outputs."""
    try:
        weights = caffemodel.read_caffemodel(path, dtype=np.float64)
    except caffemodel.CaffemodelError as e:
        raise MergeError(str(e)) from None
    if not weights:
        raise MergeError(f"{path}: no layers with weights in this caffemodel")
    return weights


def write_caffemodel(path: str | Path, net: caffe_pb2.NetParameter, weights: Weights) -> None:
    """A caffemodel carrying `weights` for the layers of `net` (by name, in net order)."""
    atomic_write_bytes(path, caffemodel_of(net, weights))


def caffemodel_of(net: caffe_pb2.NetParameter, weights: Weights) -> bytes:
    ordered = {layer.name: weights[layer.name] for layer in net.layer if layer.name in weights}
    types = {layer.name: layer.type for layer in net.layer}
    return caffemodel.caffemodel_bytes(ordered, net.name, layer_types=types)


# ---------------------------------------------------------------- fit check
# The prototxt alone rarely tells the input size (the release's ImageData takes it from the
# images), but it tells the channels: each blob is known as a partial shape (N, C, ?, ...)
# -- None where unknown -- and the layer catalogue gives each layer's parameter shapes from it.

PartialShape = tuple  # of int | None


def _unsized(shape: PartialShape | None) -> PartialShape | None:
    """The shape with only its channels (axis 1) kept: what survives a layer that may resize."""
    return None if shape is None else (None,) + tuple(shape[1:2]) + (None,) * (len(shape) - 2)


def _source_shapes(layer: caffe_pb2.LayerParameter) -> list[PartialShape | None]:
    """A data layer's tops: the channels of an Input shape or of ImageData's images."""
    if layer.type == "Input":
        declared = list(layer.input_param.shape)
        return [_unsized(tuple(declared[min(i, len(declared) - 1)].dim)) if declared else None
                for i in range(len(layer.top))]
    if layer.type == "ImageData":
        channels = 3 if layer.image_data_param.is_color else 1
        return [(None, channels, None, None)] + [None] * (len(layer.top) - 1)
    return [None] * len(layer.top)


def _legacy_inputs(net: caffe_pb2.NetParameter) -> dict[str, PartialShape | None]:
    shapes: dict[str, PartialShape | None] = {}
    for i, name in enumerate(net.input):
        if i < len(net.input_shape) and len(net.input_shape[i].dim) > 1:
            shapes[name] = _unsized(tuple(net.input_shape[i].dim))
        elif len(net.input_dim) >= 4 * (i + 1):
            shapes[name] = _unsized(tuple(net.input_dim[4 * i:4 * i + 4]))
        else:
            shapes[name] = None
    return shapes


def _top_shapes(layer: caffe_pb2.LayerParameter, first: PartialShape | None,
                known: dict[str, PartialShape | None]) -> list[PartialShape | None]:
    """The partial shapes of a layer's tops, from its first bottom's."""
    n = len(layer.top)
    if layer.type in ("Convolution", "Deconvolution"):
        rank = len(first) if first else 4
        return [(None, layer.convolution_param.num_output) + (None,) * (rank - 2)] * n
    if layer.type == "InnerProduct":
        return [(None, layer.inner_product_param.num_output)] * n
    if layer.type in CHANNEL_PRESERVING:
        return [_unsized(first)] * n
    if layer.type == "Concat" and layer.concat_param.axis == 1 and layer.concat_param.concat_dim == 1:
        parts = [known.get(b) for b in layer.bottom]
        if all(p is not None and len(p) > 1 and p[1] is not None for p in parts):
            return [(None, sum(p[1] for p in parts)) + (None,) * (len(parts[0]) - 2)]
        return [None] * n
    if not layer.bottom:
        return _source_shapes(layer)
    return [None] * n


def expected_param_shapes(net: caffe_pb2.NetParameter) -> dict[str, list[PartialShape | None]]:
    """Parameter-blob shapes each layer of `net` needs, from the prototxt alone (None where a
    dimension depends on spatial sizes or on an input whose channels are unknown)."""
    known = _legacy_inputs(net)
    expected: dict[str, list[PartialShape | None]] = {}
    for layer in net.layer:
        first = known.get(layer.bottom[0]) if layer.bottom else None
        bottoms = [first or (None,) * 4] + [None] * (len(layer.bottom) - 1)
        try:
            shapes = param_shapes(layer, bottoms) if layer.bottom else []
        except ShapeError as err:
            raise MergeError(f"layer {layer.name!r} ({layer.type}): {err}") from None
        if shapes:
            expected[layer.name] = shapes
        known.update(zip(layer.top, _top_shapes(layer, first, known)))
    return expected


def _fits(expected: PartialShape | None, actual: tuple[int, ...]) -> bool:
    if expected is None:  # e.g. the bias of a two-bottom Scale: the shape of its bottom 1
        return True
    if len(actual) == 4 and len(expected) < 4 and actual[:4 - len(expected)] == (1,) * (4 - len(expected)):
        actual = actual[4 - len(expected):]          # legacy 4-D blob of a 1-D/2-D parameter
    return len(expected) == len(actual) and all(e is None or e == a for e, a in zip(expected, actual))


def _fmt(shape) -> str:
    if shape is None:
        return "(?)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_weights_fit(net: caffe_pb2.NetParameter, weights: Weights, source: str = "caffemodel") -> Weights:
    """Weights reshaped to the prototxt's shapes; MergeError listing every misfit otherwise."""
    problems = []
    fitted: Weights = dict(weights)     # layers the catalogue gives no parameters pass through
    for name, expected in expected_param_shapes(net).items():
        if name not in weights:
            problems.append(f"layer {name!r}: missing from the {source}")
            continue
        actual = weights[name]
        if len(actual) != len(expected):
            problems.append(f"layer {name!r}: prototxt needs {len(expected)} blobs "
                            f"{', '.join(map(_fmt, expected))}; {source} has {len(actual)} "
                            f"{', '.join(_fmt(a.shape) for a in actual)}")
            continue
        arrays = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            if not _fits(e, a.shape):
                problems.append(f"layer {name!r} blob {i}: prototxt needs {_fmt(e)}, {source} has {_fmt(a.shape)}")
            elif e is not None and len(a.shape) != len(e):
                a = a.reshape(a.shape[4 - len(e):])
            arrays.append(a)
        fitted[name] = arrays
    if problems:
        raise MergeError(f"the {source} does not fit the prototxt ({len(problems)} problems): "
                         + "; ".join(problems))
    return fitted


# ---------------------------------------------------------------- folding

def _readers(net: caffe_pb2.NetParameter, blob: str, start: int) -> list[int]:
    return [j for j in range(start, len(net.layer)) if blob in net.layer[j].bottom]


class _NotFoldable(Exception):
    """This BatchNorm stays in the merged net; the message says why."""


def _fold_at(net: caffe_pb2.NetParameter, i: int) -> tuple[Fold, int | None]:
    """The fold of BatchNorm ``net.layer[i]`` and the index of its Scale (or None)."""
    layer = net.layer[i]
    source = layer.bottom[0]
    producers = [j for j in range(i) if source in net.layer[j].top]
    conv_index = producers[-1] if producers else None
    conv = net.layer[conv_index] if conv_index is not None else None
    if conv is None or conv.type not in FOLDABLE_TYPES or list(conv.top) != [source]:
        kind = f"{conv.type} {conv.name!r}" if conv is not None else "no layer"
        raise _NotFoldable(f"it follows {kind}, not a Convolution/InnerProduct")
    if conv.type == "Deconvolution" and (conv.convolution_param.group or 1) != 1:
        raise _NotFoldable(f"Deconvolution {conv.name!r} has groups")
    other = [net.layer[j].name for j in _readers(net, source, conv_index + 1) if j != i
             and (j < i or layer.top[0] != source)]
    if other:
        raise _NotFoldable(f"the output of {conv.name!r} is also read by {', '.join(other)}")
    bn_top = layer.top[0]
    scale_index = None
    after = _readers(net, bn_top, i + 1)
    if after and net.layer[after[0]].type == "Scale" and list(net.layer[after[0]].bottom) == [bn_top]:
        scale_index = after[0]
        scale = net.layer[scale_index]
        p = scale.scale_param
        if p.axis != 1 or p.num_axes != 1:
            raise _NotFoldable(f"its Scale {scale.name!r} is not per-channel (axis 1, num_axes 1)")
        if scale.top[0] != bn_top and len(after) > 1:
            raise _NotFoldable(f"its output is also read by {net.layer[after[1]].name!r}, "
                               f"not only by Scale {scale.name!r}")
    return Fold(conv.name, layer.name, net.layer[scale_index].name if scale_index is not None else None,
                layer.batch_norm_param.eps), scale_index


def plan_folds(net: caffe_pb2.NetParameter) -> tuple[list[Fold], set[int], dict[int, str], list[str]]:
    """The folds to make, the indices of layers to drop, for each folded BN/Scale the blob its
    output becomes (the convolution's top), and one line per BatchNorm that stays (e.g. one
    after a Concat or a ShuffleChannel, as in ShuffleNet) saying why."""
    folds, dropped, renames, kept = [], set(), {}, []
    for i, layer in enumerate(net.layer):
        if layer.type != "BatchNorm" or i in dropped:
            continue
        if len(layer.bottom) != 1 or len(layer.top) != 1:
            raise MergeError(f"BatchNorm {layer.name!r} must have exactly one bottom and one top")
        try:
            fold, scale_index = _fold_at(net, i)
        except _NotFoldable as why:
            kept.append(f"BatchNorm {layer.name!r} is kept, not folded: {why}")
            continue
        folds.append(fold)
        dropped.add(i)
        renames[i] = layer.bottom[0]
        if scale_index is not None:
            dropped.add(scale_index)
            renames[scale_index] = layer.bottom[0]
    return folds, dropped, renames, kept


def merge_net(net: caffe_pb2.NetParameter,
              warn: Callable[[str], None] | None = None) -> tuple[caffe_pb2.NetParameter, list[Fold]]:
    """The merged-BN prototxt of `net` and the folds it implies; `warn` gets one line per
    BatchNorm that could not be folded (it stays in the merged net with its Scale)."""
    folds, dropped, renames, kept = plan_folds(net)
    for line in kept:
        if warn is not None:
            warn(line)
    folded_convs = {f.conv for f in folds}
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    alias: dict[str, str] = {}          # blob name in `net` -> name in the merged net
    for i, layer in enumerate(net.layer):
        if i in dropped:
            top = layer.top[0]
            if top != renames[i]:
                alias[top] = renames[i]
            continue
        merged = out.layer.add()
        merged.CopyFrom(layer)
        merged.bottom[:] = [alias.get(b, b) for b in layer.bottom]
        tops = []
        for t in layer.top:
            if t in alias and t not in layer.bottom:
                del alias[t]           # a new blob reusing the name: stop renaming it
            tops.append(alias.get(t, t))
        merged.top[:] = tops
        if layer.name in folded_convs:
            if layer.type == "InnerProduct":
                merged.inner_product_param.bias_term = True
            else:
                merged.convolution_param.bias_term = True
    return out, folds


def merge_weights(net: caffe_pb2.NetParameter, weights: Weights, folds: list[Fold]) -> Weights:
    """Weights of the merged net (float64 arrays); `weights` already fitted to `net`."""
    layers = {layer.name: layer for layer in net.layer}
    merged = {name: [a.copy() for a in arrays] for name, arrays in weights.items()}
    for fold in folds:
        conv = layers[fold.conv]
        mean, var, factor = weights[fold.batch_norm]
        s = float(factor.ravel()[0])
        s = 1.0 if s == 0 else s
        mean, var = mean / s, var / s
        if fold.scale is not None:
            gamma = weights[fold.scale][0]
            beta = weights[fold.scale][1] if len(weights[fold.scale]) > 1 else np.zeros_like(gamma)
        else:
            gamma, beta = np.ones_like(mean), np.zeros_like(mean)
        a = gamma / np.sqrt(var + fold.eps)
        w = weights[fold.conv][0]
        b = weights[fold.conv][1] if len(weights[fold.conv]) > 1 else np.zeros_like(mean)
        if conv.type == "Deconvolution" or (conv.type == "InnerProduct" and conv.inner_product_param.transpose):
            w = w * a.reshape((1, -1) + (1,) * (w.ndim - 2))     # output channels on axis 1
        else:
            w = w * a.reshape((-1,) + (1,) * (w.ndim - 1))
        merged[fold.conv] = [w, (b - mean) * a + beta]
        merged.pop(fold.batch_norm, None)
        if fold.scale is not None:
            merged.pop(fold.scale, None)
    return merged


def merge_files(net_path: Path, weights_path: Path, out_net: Path, out_weights: Path,
                warn: Callable[[str], None] | None = None) -> list[Fold]:
    """Merge the pair (`net_path`, `weights_path`) into (`out_net`, `out_weights`), written
    together: a failure leaves both old files as they were.  Returns the folds made."""
    net = read_net(net_path)
    if not net.layer:
        raise MergeError(f"{net_path}: the net has no layers")
    weights = check_weights_fit(net, read_caffemodel(weights_path), f"caffemodel {weights_path}")
    merged_net, folds = merge_net(net, warn)
    merged = merge_weights(net, weights, folds)
    atomic_write_group({out_net: text_format.MessageToString(merged_net),
                        out_weights: caffemodel_of(merged_net, merged)})
    return folds
