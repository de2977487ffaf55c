"""Per-layer shape rules, written after Caffe's own ``LayerSetUp``/``Reshape`` code.

Each rule takes a ``caffe_pb2.LayerParameter`` and the shapes of its bottoms and returns
the shapes of its tops with the layer's parameter count and multiply-accumulates
(:class:`LayerCost`).  The rules reproduce Caffe's integer arithmetic exactly (C++
truncating division for convolution, float ``ceil`` for pooling, the last-window clip of
padded pooling, PSPNet's ``Interp`` size rules), and raise :class:`ShapeError` where
Caffe would abort with a ``CHECK`` failure.

Conventions:
- ``params`` counts every element of the layer's parameter blobs, i.e. what a
  ``.caffemodel`` stores for it (BatchNorm's mean/variance/factor included).
- ``macs`` counts multiply-accumulates of the weighted layers (Convolution,
  Deconvolution, InnerProduct); element-wise layers, pooling and resizing count 0.

Layout: ``core`` (the cost record, errors, checks, the ``RULES`` registry), ``geometry``
(window and size arithmetic shared with tools), ``catalogue`` (each layer type's kind -- data,
evaluation, loss, compute -- and its parameter-blob shapes, from which the rules count
``params``), and the rules by layer family (``data_layers``, ``layer_rules``,
``pointwise_rules``), which register themselves in ``RULES`` when imported here.
"""
from __future__ import annotations

from .core import (EMPTY_OUTPUT, RULES, LayerCost, NeedsInputShape, Shape, ShapeError,
                   canonical_axis, count, rule, trunc_div)
from .geometry import (ConvGeometry, PoolGeometry, conv_geometry, conv_output_size,
                       deconv_output_size, interp_output_hw, interp_output_size, legacy_axis,
                       pool_geometry, pool_output_size, upsample_output_hw)
# The rule modules fill RULES as they are imported, in the order the one module had them.
from . import data_layers, layer_rules, pointwise_rules  # noqa: E402,F401  (registration)
from .catalogue import (COMPUTE, DATA, DATA_TYPES, EVALUATION, EVALUATION_TYPES, LOSS, LOSS_TYPES,
                        bn_blob_count, is_data_layer, is_scoring_layer, layer_kind, param_count,
                        param_shapes, type_kind)

__all__ = [
    "COMPUTE", "DATA", "DATA_TYPES", "EVALUATION", "EVALUATION_TYPES", "LOSS", "is_data_layer",
    "is_scoring_layer", "layer_kind", "param_count", "param_shapes", "type_kind",
    "EMPTY_OUTPUT", "LOSS_TYPES", "RULES", "ConvGeometry", "LayerCost", "NeedsInputShape",
    "PoolGeometry", "Shape", "ShapeError", "bn_blob_count", "canonical_axis", "conv_geometry",
    "conv_output_size", "count", "deconv_output_size", "interp_output_hw",
    "interp_output_size", "legacy_axis", "pool_geometry", "pool_output_size", "rule",
    "trunc_div", "upsample_output_hw",
]
