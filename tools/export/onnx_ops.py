"""ONNX nodes for Caffe's windowed and weighted layers: Convolution / Deconvolution, Pooling
(with its mask top), Interp, Upsample (max-unpooling), Crop, LRN and InnerProduct.

Each exporter is `f(graph, layer, blobs, in_shape)`: it reads the layer's bottoms from the
graph, adds nodes, and writes every top through `graph.top` (in top order)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from prototxt_gen import caffe_pb2
from tools.export.caffe_net import conv_geometry, interp_geometry, pool_geometry
from tools.export.onnx_graph import Graph, PoolIndices, UnsupportedLayerError, slice_hw


def export_convolution(g: Graph, layer, blobs, in_shape):
    geo = conv_geometry(layer)
    op = "Conv" if layer.type == "Convolution" else "ConvTranspose"
    inputs = [g.bottom(layer.bottom[0]), g.const(layer.name + "/weight", blobs[0])]
    if geo.bias_term:
        inputs.append(g.const(layer.name + "/bias", blobs[1]))
    g.node(op, inputs, [g.top(layer.top[0], layer.name)], layer.name,
           kernel_shape=list(geo.kernel), strides=list(geo.stride),
           pads=[geo.pad[0], geo.pad[1], geo.pad[0], geo.pad[1]],
           dilations=list(geo.dilation), group=geo.group)


def _grid_extent(kernel: int, stride: int, out: int) -> int:
    """Extent of Caffe's pooling-window grid in padded coordinates."""
    return (out - 1) * stride + kernel


def export_pooling(g: Graph, layer, blobs, in_shape):
    geo = pool_geometry(layer, in_shape[2:])
    if geo.method not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise UnsupportedLayerError(f"layer {layer.name!r}: STOCHASTIC pooling is not supported")
    x = g.bottom(layer.bottom[0])
    top = g.top(layer.top[0], layer.name)
    is_max = geo.method == caffe_pb2.PoolingParameter.MAX
    with_mask = len(layer.top) == 2
    if geo.global_pooling and not with_mask:
        g.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], [top], layer.name)
        return
    height, width = in_shape[2:]
    extents = [_grid_extent(k, st, o) for k, st, o in zip(geo.kernel, geo.stride, geo.output)]
    attrs = dict(kernel_shape=list(geo.kernel), strides=list(geo.stride))
    if is_max:
        # Windows cover [-pad, extent - pad); Caffe's windows never read past the input, so the
        # begin padding (never the max) and any end padding behave like -inf padding.
        needed = [e - p for e, p in zip(extents, geo.pad)]
        read_hw = (min(needed[0], height), min(needed[1], width))
        if read_hw != (height, width):
            x = slice_hw(g, x, layer.name + "/crop", read_hw)
        ends = [max(n - s, 0) for n, s in zip(needed, (height, width))]
        outputs = [top] + ([g.temp(layer.name + "/indices")] if with_mask else [])
        g.node("MaxPool", [x], outputs, layer.name,
               pads=[geo.pad[0], geo.pad[1], ends[0], ends[1]], **attrs)
        if with_mask:
            _caffe_mask(g, layer, outputs[1], (height, width), read_hw)
        return
    # AVE: Caffe divides by the window clipped to the padded input [-pad, size + pad): zero-pad
    # explicitly, then let pooling exclude only the extra end padding of the ceil-mode grid.
    if any(geo.pad):
        padded = g.temp(layer.name + "/pad")
        pads = [0, 0, geo.pad[0], geo.pad[1], 0, 0, geo.pad[0], geo.pad[1]]
        g.node("Pad", [x, g.const(layer.name + "/pads", pads, np.int64)], [padded],
               layer.name + "/pad", mode="constant")
        x = padded
    padded_hw = (height + 2 * geo.pad[0], width + 2 * geo.pad[1])
    if extents[0] < padded_hw[0] or extents[1] < padded_hw[1]:
        x = slice_hw(g, x, layer.name + "/crop",
                     (min(extents[0], padded_hw[0]), min(extents[1], padded_hw[1])))
    ends = [max(e - s, 0) for e, s in zip(extents, padded_hw)]
    g.node("AveragePool", [x], [top], layer.name, pads=[0, 0, ends[0], ends[1]],
           count_include_pad=0, **attrs)


def _caffe_mask(g: Graph, layer, indices: str, in_hw, read_hw) -> None:
    """Caffe's mask top (float y * W + x of each maximum within its input plane) from MaxPool's
    indices, which are flat over the (N, C, h, w) tensor it read (h x w = `read_hw`)."""
    name = layer.name + "/mask"
    plane = g.temp(name + "/in_plane")
    g.node("Mod", [indices, g.const(name + "/plane", read_hw[0] * read_hw[1], np.int64)],
           [plane], name + "/in_plane")
    if read_hw[1] != in_hw[1]:  # a column crop changed the row length: re-index the rows
        row, col, start = g.temp(name + "/row"), g.temp(name + "/col"), g.temp(name + "/start")
        read_w = g.const(name + "/read_w", read_hw[1], np.int64)
        g.node("Div", [plane, read_w], [row], name + "/row")
        g.node("Mod", [plane, read_w], [col], name + "/col")
        g.node("Mul", [row, g.const(name + "/width", in_hw[1], np.int64)], [start], name + "/start")
        reindexed = g.temp(name + "/index")
        g.node("Add", [start, col], [reindexed], name + "/index")
        plane = reindexed
    mask = g.top(layer.top[1], layer.name)
    g.node("Cast", [plane], [mask], name, to=TensorProto.FLOAT)
    if g.masks_from_caffe:
        fed = f"{layer.top[1]}#caffe"
        g.mask_inputs[layer.top[1]] = (fed, tuple(g.net.blob_shapes[layer.top[1]]))
        g.current[layer.top[1]] = fed
        return
    g.pool_indices[mask] = PoolIndices(indices, tuple(in_hw), read_hw != tuple(in_hw))


def export_upsample(g: Graph, layer, blobs, in_shape):
    """Max-unpooling: MaxUnpool scatters each value to its flat index in the output tensor.
    When the mask comes straight from a MaxPool whose input had this output size, its indices
    are exactly those; otherwise they are the mask plus each plane's offset."""
    n, c = in_shape[:2]
    out_shape = tuple(g.net.blob_shapes[layer.top[0]])
    out_plane = out_shape[2] * out_shape[3]
    values, mask = g.bottom(layer.bottom[0]), g.bottom(layer.bottom[1])
    source = g.pool_indices.get(mask)
    if source is not None and not source.cropped and source.input_hw == out_shape[2:]:
        indices = source.value
    else:
        in_plane, indices = g.temp(layer.name + "/index"), g.temp(layer.name + "/indices")
        g.node("Cast", [mask], [in_plane], layer.name + "/index", to=TensorProto.INT64)
        offsets = (np.arange(n * c, dtype=np.int64) * out_plane).reshape(n, c, 1, 1)
        g.node("Add", [in_plane, g.const(layer.name + "/offsets", offsets, np.int64)],
               [indices], layer.name + "/indices")
    # output_shape decides the size, but ONNX Runtime wants it at least the size the window
    # attributes give, (in - 1) * stride + kernel - pads: the scale, less end padding.
    kernel, pads = [], []
    for size, out, scale in zip(in_shape[2:], out_shape[2:], _upsample_scale(layer)):
        if size * scale - out >= scale:  # an explicit output far below in * scale
            scale = 1
        kernel.append(scale)
        pads.append(max(size * scale - out, 0))
    g.node("MaxUnpool", [values, indices, g.const(layer.name + "/shape", out_shape, np.int64)],
           [g.top(layer.top[0], layer.name)], layer.name, kernel_shape=kernel, strides=kernel,
           pads=[0, 0] + pads)


def _upsample_scale(layer) -> tuple[int, int]:
    p = layer.upsample_param
    return (max(int(p.scale_h if p.HasField("scale_h") else p.scale), 1),
            max(int(p.scale_w if p.HasField("scale_w") else p.scale), 1))


def export_interp(g: Graph, layer, blobs, in_shape):
    geo = interp_geometry(layer, in_shape[2:])
    x = g.bottom(layer.bottom[0])
    height, width = in_shape[2:]
    if geo.crop_begin or geo.crop_end:
        x = slice_hw(g, x, layer.name + "/crop", (height - geo.crop_end, width - geo.crop_end),
                     starts=(geo.crop_begin, geo.crop_begin))
    sizes = g.const(layer.name + "/sizes", list(in_shape[:2]) + list(geo.output), np.int64)
    g.node("Resize", [x, "", "", sizes], [g.top(layer.top[0], layer.name)], layer.name,
           mode="linear", coordinate_transformation_mode="align_corners")


def export_crop(g: Graph, layer, blobs, in_shape):
    """Crop bottom[0] to bottom[1]'s size from `axis` on, starting at the offsets."""
    reference = g.net.bottom_shapes[layer.name][1]
    p = layer.crop_param
    ndim = len(in_shape)
    start = p.axis % ndim
    offsets = [p.offset[0] if len(p.offset) == 1 else (p.offset[i - start] if p.offset else 0)
               for i in range(start, ndim)]
    ends = [o + reference[i] for o, i in zip(offsets, range(start, ndim))]
    g.node("Slice", [g.bottom(layer.bottom[0]), g.const(layer.name + "/starts", offsets, np.int64),
                     g.const(layer.name + "/ends", ends, np.int64),
                     g.const(layer.name + "/axes", list(range(start, ndim)), np.int64)],
           [g.top(layer.top[0], layer.name)], layer.name)


def export_lrn(g: Graph, layer, blobs, in_shape):
    """ACROSS_CHANNELS is ONNX's LRN (k = bias, odd local_size centred); WITHIN_CHANNEL is
    x * (1 + alpha * mean of x^2 over the padded local_size^2 window)^-beta, as Caffe composes
    it from pooling and power layers (its windows never leave the padded input: divisor n^2)."""
    p = layer.lrn_param
    x = g.bottom(layer.bottom[0])
    top = g.top(layer.top[0], layer.name)
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        g.node("LRN", [x], [top], layer.name, size=int(p.local_size), alpha=float(p.alpha),
               beta=float(p.beta), bias=float(p.k))
        return
    size, pad = int(p.local_size), (int(p.local_size) - 1) // 2
    square, mean = g.temp(layer.name + "/square"), g.temp(layer.name + "/mean")
    g.node("Mul", [x, x], [square], layer.name + "/square")
    g.node("AveragePool", [square], [mean], layer.name + "/mean", kernel_shape=[size, size],
           strides=[1, 1], pads=[pad] * 4, count_include_pad=1)
    scaled, base, factor = (g.temp(layer.name + s) for s in ("/scaled", "/base", "/factor"))
    g.node("Mul", [mean, g.const(layer.name + "/alpha", np.float32(p.alpha))], [scaled],
           layer.name + "/scaled")
    g.node("Add", [scaled, g.const(layer.name + "/one", np.float32(1))], [base],
           layer.name + "/base")
    g.node("Pow", [base, g.const(layer.name + "/beta", np.float32(-p.beta))], [factor],
           layer.name + "/pow")
    g.node("Mul", [x, factor], [top], layer.name)


def export_inner_product(g: Graph, layer, blobs, in_shape):
    p = layer.inner_product_param
    axis = p.axis % len(in_shape)
    x = g.bottom(layer.bottom[0])
    if len(in_shape) != 2 or axis != 1:
        flat = g.temp(layer.name + "/flatten")
        g.node("Flatten", [x], [flat], layer.name + "/flatten", axis=axis)
        x = flat
    out_shape = g.net.blob_shapes[layer.top[0]]
    inputs = [x, g.const(layer.name + "/weight", blobs[0])]
    if p.bias_term:
        inputs.append(g.const(layer.name + "/bias", blobs[1]))
    if axis == 1:
        g.node("Gemm", inputs, [g.top(layer.top[0], layer.name)], layer.name,
               transB=0 if p.transpose else 1)
        return
    flat_out = g.temp(layer.name + "/gemm")
    g.node("Gemm", inputs, [flat_out], layer.name, transB=0 if p.transpose else 1)
    g.node("Reshape", [flat_out, g.const(layer.name + "/shape", list(out_shape), np.int64)],
           [g.top(layer.top[0], layer.name)], layer.name + "/reshape")


EXPORTERS = {
    "Convolution": export_convolution,
    "Deconvolution": export_convolution,
    "Pooling": export_pooling,
    "Interp": export_interp,
    "Upsample": export_upsample,
    "Crop": export_crop,
    "LRN": export_lrn,
    "InnerProduct": export_inner_product,
}
