"""Shape rules of the element-wise and normalisation layers and of the heads (ArgMax,
Accuracy, the losses)."""
from __future__ import annotations

from .catalogue import LOSS_TYPES, param_count
from .core import LayerCost, _bottoms, _check, canonical_axis, count, rule

# --------------------------------------------------------------------------- element-wise

@rule("ReLU", "Dropout", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "ELU",
      "Threshold", "LRN", "MVN", "Clip", "Swish", "Softmax")
def _same_shape(layer, bottoms):
    _bottoms(bottoms, exact=1)
    return LayerCost([bottoms[0]])


@rule("ShuffleChannel")
def _shuffle_channel(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    group = layer.shuffle_channel_param.group
    _check(len(shape) >= 2, "ShuffleChannel needs a channel axis (N, C, ...)")
    _check(group >= 1 and shape[1] % group == 0,
           f"{shape[1]} channels do not split into {group} groups")
    return LayerCost([shape])


@rule("BatchNorm")
def _batch_norm(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    return LayerCost([shape], params=param_count(layer, bottoms))


@rule("BN")
def _fork_bn(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    _check(len(shape) == 4, "BN needs a 4-axis (N, C, H, W) input")
    return LayerCost([shape], params=param_count(layer, bottoms))


@rule("Scale")
def _scale(layer, bottoms):
    _bottoms(bottoms, minimum=1)
    _check(len(bottoms) <= 2, "Scale takes one or two bottoms")
    p = layer.scale_param
    if len(bottoms) == 2 and bottoms[1]:
        scale_shape = bottoms[1]
        axis = canonical_axis(p.axis, len(bottoms[0]))
        _check(bottoms[0][axis:axis + len(scale_shape)] == scale_shape,
               f"scale blob {list(scale_shape)} does not match bottom[0] {list(bottoms[0])}")
    return LayerCost([bottoms[0]], params=param_count(layer, bottoms))


@rule("Bias")
def _bias(layer, bottoms):
    _bottoms(bottoms, minimum=1)
    return LayerCost([bottoms[0]], params=param_count(layer, bottoms))


@rule("PReLU")
def _prelu(layer, bottoms):
    _bottoms(bottoms, exact=1)
    shape = bottoms[0]
    _check(len(shape) >= 2, "number of axes of bottom blob must be >=2")
    return LayerCost([shape], params=param_count(layer, bottoms))


# --------------------------------------------------------------------------- heads

@rule("ArgMax")
def _argmax(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.argmax_param
    shape = bottoms[0]
    _check(p.top_k >= 1, "top k must not be less than 1")
    if p.HasField("axis"):
        axis = canonical_axis(p.axis, len(shape))
        _check(p.top_k <= shape[axis], "top_k must be less than or equal to the dimension of the axis")
        out = list(shape)
        out[axis] = p.top_k
    else:
        _check(p.top_k <= count(shape, 1), "top_k must be less than or equal to the number of classes")
        out = [1] * max(3, len(shape))
        out[0] = shape[0]
        out[2] = p.top_k
        if p.out_max_val:
            out[1] = 2
    return LayerCost([tuple(out)])


@rule("Accuracy")
def _accuracy(layer, bottoms):
    _bottoms(bottoms, exact=2)
    p = layer.accuracy_param
    scores, labels = bottoms
    axis = canonical_axis(p.axis, len(scores))
    _check(p.top_k <= count(scores) // max(count(labels), 1),
           "top_k must be less than or equal to the number of classes")
    _check(count(scores, 0, axis) * count(scores, axis + 1) == count(labels),
           f"number of labels ({count(labels)}) must match number of predictions "
           f"({count(scores, 0, axis) * count(scores, axis + 1)})")
    tops = [()]
    if len(layer.top) > 1:
        tops.append((scores[axis],))
    return LayerCost(tops)


@rule(*LOSS_TYPES)
def _loss(layer, bottoms):
    _bottoms(bottoms, minimum=2)
    if layer.type == "SoftmaxWithLoss":
        scores, labels = bottoms[0], bottoms[1]
        axis = canonical_axis(layer.softmax_param.axis, len(scores))
        predictions = count(scores, 0, axis) * count(scores, axis + 1)
        _check(predictions == count(labels), f"number of labels ({count(labels)}) must match "
               f"number of predictions ({predictions})")
    elif layer.type == "EuclideanLoss":
        _check(count(bottoms[0], 1) == count(bottoms[1], 1),
               "inputs must have the same dimension")
    tops = [()]
    if len(layer.top) > 1:  # SoftmaxWithLoss's optional probability output
        tops.append(bottoms[0])
    return LayerCost(tops)


@rule("Silence")
def _silence(layer, bottoms):
    return LayerCost([])


@rule("Reduction")
def _reduction(layer, bottoms):
    _bottoms(bottoms, exact=1)
    axis = canonical_axis(layer.reduction_param.axis, len(bottoms[0])) if bottoms[0] else 0
    return LayerCost([bottoms[0][:axis]])


@rule("Tile")
def _tile(layer, bottoms):
    _bottoms(bottoms, exact=1)
    p = layer.tile_param
    _check(p.tiles > 0, "number of tiles must be positive")
    shape = list(bottoms[0])
    axis = canonical_axis(p.axis, len(shape))
    shape[axis] *= p.tiles
    return LayerCost([tuple(shape)])
