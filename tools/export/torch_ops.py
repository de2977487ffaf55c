"""PyTorch code for one Caffe layer: the module it becomes (if any), the one line of
`forward` that runs it, and its Caffe blobs as that module's state_dict entries.

Each emitter is `f(layer, blobs, bottoms, net) -> LayerCode`, where `bottoms` are the shapes of
the layer's inputs and `blobs` its Caffe parameter blobs (in Caffe's order).  The forward
expression names its inputs `{0}`, `{1}`, ... and the layer's module `{self}`; the whole-net
converter (tools.export.torch_convert) fills in local and attribute names.  Layers run in
torch.nn where torch's arithmetic is Caffe's, and through tools.export.torch_layers where it
is not (names listed in `helpers`, copied into the generated file)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prototxt_gen import caffe_pb2, shapes
from tools.export.caffe_net import (UnsupportedLayerError, argmax_axis, concat_axis,
                                    conv_geometry, scale_span)


@dataclass
class LayerCode:
    call: str                      # forward expression: {self} the module, {0}.. the bottoms
    module: str | None = None      # constructor of the layer's module, if it has one
    state: dict[str, np.ndarray] = field(default_factory=dict)   # state_dict entries
    helpers: tuple[str, ...] = ()  # tools.export.torch_layers names the code uses


def literal(value) -> str:
    """A Python literal for an int, a float32 field (shortest form that reads back the
    same float32), a bool, or a tuple of them (a pair of equal ints written once)."""
    if isinstance(value, (tuple, list)):
        items = [literal(v) for v in value]
        return items[0] if len(set(items)) == 1 and len(items) == 2 else f"({', '.join(items)})"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(str(np.float32(value))))   # the float32's shortest decimal: 0.0001


def tuple_literal(values) -> str:
    """A tuple literal, a 1-tuple included: (64,)."""
    items = [literal(v) for v in values]
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def _kwargs(**values) -> str:
    return ", ".join(f"{k}={literal(v)}" for k, v in values.items())


def _f32(array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, np.float32))


# --------------------------------------------------------------------------- weighted layers


def convolution(layer, blobs, bottoms, net):
    geo = conv_geometry(layer)
    kind = "Conv2d" if layer.type == "Convolution" else "ConvTranspose2d"
    options = dict(kernel_size=geo.kernel, stride=geo.stride, padding=geo.pad)
    if geo.dilation != (1, 1):
        options["dilation"] = geo.dilation
    if geo.group != 1:
        options["groups"] = geo.group
    if not geo.bias_term:
        options["bias"] = False
    state = {"weight": _f32(blobs[0])}
    if geo.bias_term:
        state["bias"] = _f32(blobs[1])
    return LayerCode("{self}({0})", f"nn.{kind}({bottoms[0][1]}, {geo.num_output}, "
                     f"{_kwargs(**options)})", state)


def inner_product(layer, blobs, bottoms, net):
    p = layer.inner_product_param
    axis = p.axis % len(bottoms[0])
    weight = _f32(blobs[0].T if p.transpose else blobs[0])   # torch keeps (out, in)
    state = {"weight": weight}
    if p.bias_term:
        state["bias"] = _f32(blobs[1])
    module = f"nn.Linear({weight.shape[1]}, {weight.shape[0]}" + \
        ("" if p.bias_term else ", bias=False") + ")"
    flat = "{0}" if axis == len(bottoms[0]) - 1 else f"{{0}}.flatten({axis})"
    return LayerCode(f"{{self}}({flat})", module, state)


def batch_norm(layer, blobs, bottoms, net):
    """Caffe keeps sums scaled by a moving-average factor: the statistics are blob / factor
    (a factor of 0 zeroes them, as Caffe does)."""
    p = layer.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise UnsupportedLayerError(f"layer {layer.name!r}: BatchNorm with use_global_stats: "
                                    f"false normalises by batch statistics in every phase")
    stored = float(np.asarray(blobs[2]).reshape(-1)[0])
    factor = np.float32(0.0 if stored == 0 else 1.0 / stored)
    state = {"running_mean": _f32(blobs[0] * factor), "running_var": _f32(blobs[1] * factor),
             "num_batches_tracked": np.array(0, np.int64)}
    return LayerCode("{self}({0})", f"{_batch_norm_class(bottoms[0])}({bottoms[0][1]}, "
                     f"eps={literal(p.eps)}, affine=False)", state)


def _batch_norm_class(shape) -> str:
    return "nn.BatchNorm2d" if len(shape) == 4 else "nn.BatchNorm1d"


def fork_bn(layer, blobs, bottoms, net):
    """PSPNet's BN (slope, bias, mean, variance) is an affine BatchNorm with stored statistics;
    SegNet's BN in INFERENCE mode (scale, shift) a per-channel Scale."""
    p = layer.bn_param
    channels = bottoms[0][1]
    flat = [_f32(b).reshape(-1) for b in blobs]
    if shapes.bn_blob_count(p) == 4:
        state = {"weight": flat[0], "bias": flat[1], "running_mean": flat[2],
                 "running_var": flat[3], "num_batches_tracked": np.array(0, np.int64)}
        return LayerCode("{self}({0})", f"{_batch_norm_class(bottoms[0])}({channels}, "
                         f"eps={literal(p.eps)})", state)
    if p.bn_mode != caffe_pb2.BNParameter.INFERENCE:
        raise UnsupportedLayerError(f"layer {layer.name!r}: SegNet BN with bn_mode LEARN "
                                    f"normalises by batch statistics; use bn_mode: INFERENCE")
    return LayerCode("{self}({0})", f"Scale(({channels},), axis=1)",
                     {"weight": flat[0], "bias": flat[1]}, ("Scale",))


def scale(layer, blobs, bottoms, net):
    axis, num_axes = scale_span(layer, bottoms[0])
    bias = layer.scale_param.bias_term
    if len(bottoms) == 2:   # the factor is the second input
        shape = tuple(bottoms[1])
        state = {"bias": _f32(blobs[0]).reshape(shape)} if bias else {}
        return LayerCode("{self}({0}, {1})", f"Scale({tuple_literal(shape)}, axis={axis}, "
                         f"bias={bias}, learned=False)", state, ("Scale",))
    shape = tuple(bottoms[0][axis:axis + num_axes])
    state = {"weight": _f32(blobs[0]).reshape(shape)}
    if bias:
        state["bias"] = _f32(blobs[1]).reshape(shape)
    return LayerCode("{self}({0})", f"Scale({tuple_literal(shape)}, axis={axis}"
                     + ("" if bias else ", bias=False") + ")", state, ("Scale",))


def prelu(layer, blobs, bottoms, net):
    slope = _f32(blobs[0]).reshape(-1)
    return LayerCode("{self}({0})", f"nn.PReLU({slope.size})", {"weight": slope})


# --------------------------------------------------------------------------- windows


def pooling(layer, blobs, bottoms, net):
    p = layer.pooling_param
    if p.pool not in (p.MAX, p.AVE):
        raise UnsupportedLayerError(f"layer {layer.name!r}: STOCHASTIC pooling is not supported")
    geo = shapes.pool_geometry(p, tuple(bottoms[0][2:]))   # checked at the net's size
    method = "max" if p.pool == p.MAX else "ave"
    mask = len(layer.top) == 2
    if p.global_pooling:
        options = dict(global_pooling=True)
    else:
        options = dict(kernel_size=geo.kernel, stride=geo.stride, padding=geo.pad)
        if p.round_mode == caffe_pb2.PoolingParameter.FLOOR:
            options["ceil_mode"] = False
    if mask:
        options["return_mask"] = True
    return LayerCode("{self}({0})", f'CaffePool2d("{method}", {_kwargs(**options)})',
                     helpers=("CaffePool2d",))


def interp(layer, blobs, bottoms, net):
    p = layer.interp_param
    fields = ("height", "width", "zoom_factor", "shrink_factor", "pad_beg", "pad_end")
    options = {f: getattr(p, f) for f in fields if p.HasField(f) and getattr(p, f)}
    return LayerCode("{self}({0})", f"Interp({_kwargs(**options)})", helpers=("Interp",))


def upsample(layer, blobs, bottoms, net):
    p = layer.upsample_param
    scale_hw = (p.scale_h if p.HasField("scale_h") else p.scale,
                p.scale_w if p.HasField("scale_w") else p.scale)
    options = dict(scale=(int(scale_hw[0]), int(scale_hw[1])))
    size = (p.upsample_h if p.HasField("upsample_h") else 0,
            p.upsample_w if p.HasField("upsample_w") else 0)
    if any(size):
        options["size"] = size
    if p.pad_out_h or p.pad_out_w:
        options["pad_out"] = (int(p.pad_out_h), int(p.pad_out_w))
    args = ", ".join(f"{k}=({v[0]}, {v[1]})" for k, v in options.items())
    return LayerCode(f"max_unpool({{0}}, {{1}}, {args})", helpers=("max_unpool",))


def crop(layer, blobs, bottoms, net):
    p = layer.crop_param
    return LayerCode(f"caffe_crop({{0}}, {{1}}, axis={p.axis}, offsets="
                     f"{list(map(int, p.offset))})", helpers=("caffe_crop",))


def lrn(layer, blobs, bottoms, net):
    p = layer.lrn_param
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        return LayerCode(f"F.local_response_norm({{0}}, {_kwargs(size=p.local_size, alpha=p.alpha, beta=p.beta, k=p.k)})")
    return LayerCode(f"caffe_lrn_within_channel({{0}}, {_kwargs(size=p.local_size, alpha=p.alpha, beta=p.beta)})",
                     helpers=("caffe_lrn_within_channel",))


# --------------------------------------------------------------------------- per element


def relu(layer, blobs, bottoms, net):
    slope = layer.relu_param.negative_slope
    return LayerCode(f"F.leaky_relu({{0}}, {literal(slope)})" if slope else "F.relu({0})")


def eltwise(layer, blobs, bottoms, net):
    p = layer.eltwise_param
    n = len(bottoms)
    if p.operation == caffe_pb2.EltwiseParameter.MAX:
        call = "{0}"
        for i in range(1, n):
            call = f"torch.maximum({call}, {{{i}}})"
        return LayerCode(call)
    if p.operation == caffe_pb2.EltwiseParameter.PROD:
        return LayerCode(" * ".join(f"{{{i}}}" for i in range(n)))
    coeffs = list(p.coeff) or [1.0] * n
    terms = []
    for i, c in enumerate(coeffs):
        term = f"{{{i}}}" if c in (1.0, -1.0) else f"{literal(abs(c))} * {{{i}}}"
        sign = "-" if c < 0 else "+"
        terms.append((sign, term))
    call = ("-" if terms[0][0] == "-" else "") + terms[0][1]
    for sign, term in terms[1:]:
        call += f" {sign} {term}"
    return LayerCode(call)


def power(layer, blobs, bottoms, net):
    p = layer.power_param
    options = {k: v for k, v, default in (("power", p.power, 1.0), ("scale", p.scale, 1.0),
                                          ("shift", p.shift, 0.0)) if v != default}
    if not options:
        return LayerCode("{0}")
    return LayerCode(f"caffe_power({{0}}, {_kwargs(**options)})", helpers=("caffe_power",))


def softmax(layer, blobs, bottoms, net):
    return LayerCode(f"F.softmax({{0}}, dim={layer.softmax_param.axis % len(bottoms[0])})")


def argmax(layer, blobs, bottoms, net):
    p = layer.argmax_param
    if p.top_k != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r}: ArgMax with top_k {p.top_k} is not "
                                    f"supported (only top_k 1)")
    axis = argmax_axis(layer, len(bottoms[0]))
    if axis is None and p.out_max_val:
        raise UnsupportedLayerError(f"layer {layer.name!r}: ArgMax out_max_val without axis "
                                    f"is not supported")
    options = {} if axis is None else {"axis": axis}
    if p.out_max_val:
        options["out_max_val"] = True
    args = "".join(f", {k}={literal(v)}" for k, v in options.items())
    return LayerCode(f"caffe_argmax({{0}}{args})", helpers=("caffe_argmax",))


def concat(layer, blobs, bottoms, net):
    axis = concat_axis(layer, len(bottoms[0]))
    if len(bottoms) == 1:
        return LayerCode("{0}")
    return LayerCode(f"torch.cat([{', '.join(f'{{{i}}}' for i in range(len(bottoms)))}], "
                     f"dim={axis})")


def slice_(layer, blobs, bottoms, net):
    axis = shapes.legacy_axis(layer.slice_param, "slice_dim", len(bottoms[0]))
    points = list(map(int, layer.slice_param.slice_point))
    return LayerCode(f"caffe_slice({{0}}, axis={axis}, points={points}, count={len(layer.top)})",
                     helpers=("caffe_slice",))


def shuffle_channel(layer, blobs, bottoms, net):
    return LayerCode(f"shuffle_channel({{0}}, {layer.shuffle_channel_param.group})",
                     helpers=("shuffle_channel",))


def flatten(layer, blobs, bottoms, net):
    p = layer.flatten_param
    return LayerCode(f"torch.flatten({{0}}, {p.axis}, {p.end_axis})")


def reshape(layer, blobs, bottoms, net):
    p = layer.reshape_param
    options = f"{list(map(int, p.shape.dim))}"
    if p.axis != 0:
        options += f", axis={p.axis}"
    if p.num_axes != -1:
        options += f", num_axes={p.num_axes}"
    return LayerCode(f"caffe_reshape({{0}}, {options})", helpers=("caffe_reshape",))


def passthrough(layer, blobs, bottoms, net):
    """Dropout (scales at training time only) and Split: every top is the input."""
    return LayerCode(", ".join(["{0}"] * len(layer.top)))


def simple(function: str):
    return lambda layer, blobs, bottoms, net: LayerCode(f"{function}({{0}})")


EMITTERS = {
    "Convolution": convolution,
    "Deconvolution": convolution,
    "InnerProduct": inner_product,
    "BatchNorm": batch_norm,
    "BN": fork_bn,
    "Scale": scale,
    "PReLU": prelu,
    "Pooling": pooling,
    "Interp": interp,
    "Upsample": upsample,
    "Crop": crop,
    "LRN": lrn,
    "ReLU": relu,
    "Sigmoid": simple("torch.sigmoid"),
    "TanH": simple("torch.tanh"),
    "Eltwise": eltwise,
    "Power": power,
    "Softmax": softmax,
    "ArgMax": argmax,
    "Concat": concat,
    "Slice": slice_,
    "ShuffleChannel": shuffle_channel,
    "Flatten": flatten,
    "Reshape": reshape,
    "Dropout": passthrough,
    "Split": passthrough,
}
