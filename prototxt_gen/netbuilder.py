"""A growing network: layers appended in order, with the release's conv/BN/Scale/ReLU unit.

The one place that knows how the release names a convolution unit, with and without
BatchNorm merged into the convolution::

    with BN:     name (top name) -> name/bn (top name/bn) -> name/bn_scale -> name/relu
    merged BN:   name (bias on, top name) -> name/relu

Every builder above this returns the *top* it produced, so blocks compose like functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import caffe_pb2
from . import layers as L


@dataclass
class NetBuilder:
    merge_bn: bool = False
    net: caffe_pb2.NetParameter = field(default_factory=caffe_pb2.NetParameter)

    def add(self, layer: caffe_pb2.LayerParameter) -> str:
        self.net.layer.append(layer)
        return layer.top[0] if layer.top else ""

    def conv_unit(self, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1,
                  relu: bool = True, bn_name: str | None = None) -> str:
        """Convolution + BatchNorm + Scale (+ ReLU), or the merged-BN convolution (+ ReLU).

        ``bn_name`` overrides the prefix of the BN/Scale layer *names* (not tops): the release
        names the projection shortcut's BN ``res2.1skipConv/bn`` although its top is
        ``res2.1.skipConv/bn``.
        """
        layer = L.convolution(name, bottom, name, num_output, kernel, stride)
        return self.norm_unit(layer, "ReLU" if relu else None, bn_name)

    def norm_unit(self, layer: caffe_pb2.LayerParameter, activation: str | None = "ReLU",
                  bn_name: str | None = None) -> str:
        """``layer`` (a Convolution or Deconvolution whose top is its name) + BatchNorm + Scale
        (+ ``activation``: ReLU or PReLU, in place, named ``<name>/relu`` / ``<name>/prelu``);
        with merged BN the layer's own bias instead of BatchNorm + Scale."""
        name = layer.name
        layer.convolution_param.bias_term = self.merge_bn
        top = self.add(layer)
        if not self.merge_bn:
            bn_name = bn_name or name
            top = self.add(L.batch_norm(f"{bn_name}/bn", top, f"{name}/bn"))
            self.add(L.scale(f"{bn_name}/bn_scale", top))
        if activation:
            self.add(L.activation(activation, f"{name}/{activation.lower()}", top))
        return top

    def batch_norm_unit(self, name: str, bottom: str) -> str:
        """BatchNorm + Scale on a blob no convolution produced (e.g. a Concat), where merging
        has nothing to fold into: merged, the two become one Scale with bias (their affine map)."""
        top = f"{name}/bn"
        if self.merge_bn:
            return self.add(L.scale(f"{name}/bn_scale", bottom, top))
        self.add(L.batch_norm(f"{name}/bn", bottom, top))
        self.add(L.scale(f"{name}/bn_scale", top))
        return top
