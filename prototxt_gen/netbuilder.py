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
        self.add(L.convolution(name, bottom, name, num_output, kernel, stride, bias=self.merge_bn))
        top = name
        if not self.merge_bn:
            bn_name = bn_name or name
            top = self.add(L.batch_norm(f"{bn_name}/bn", name, f"{name}/bn"))
            self.add(L.scale(f"{bn_name}/bn_scale", top))
        if relu:
            self.add(L.relu(f"{name}/relu", top))
        return top
