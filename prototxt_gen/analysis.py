"""Network analysis the way Caffe's ``Net::Init`` sees a net.

``analyze(net, input_shape=None, phase="TEST")`` runs Caffe's own preparation steps on a
``caffe_pb2.NetParameter`` in pure Python -

1. upgrade old-style ``input``/``input_dim``/``input_shape`` fields into an ``Input`` layer
   named "input" at the front (upgrade_proto.cpp ``UpgradeNetInput``),
2. drop layers whose include/exclude rules reject the net state (net.cpp ``FilterNet``;
   note that ``caffe time`` builds the TRAIN phase),
3. insert ``Split`` layers where a blob feeds several bottoms (insert_splits.cpp), with
   Caffe's names ``<blob>_<layer>_<i>_split``,

(these steps live in :mod:`prototxt_gen.netprep`), then sets up every layer with the
shape rules of :mod:`prototxt_gen.shapes`, and adds up each top's count (in-place tops
included) x 4 bytes as net.cpp's "Memory required for data" does.  The result lists each
layer with its top shapes, parameters and MACs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from . import caffe_pb2
from .netio import read_net
from .netprep import AnalysisError, prepare_net
from .shapes import LOSS_TYPES, RULES, NeedsInputShape, Shape, ShapeError, is_data_layer

__all__ = ["AnalysisError", "LayerInfo", "NetAnalysis", "TopInfo", "analyze", "stated_phase"]

BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class TopInfo:
    name: str
    shape: Shape

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def shape_string(self) -> str:
        """Blob::shape_string(): "1 3 224 224 (150528)"."""
        return " ".join(str(d) for d in self.shape) + (" " if self.shape else "") + f"({self.count})"


@dataclass
class LayerInfo:
    name: str
    type: str
    bottoms: list[str]
    tops: list[TopInfo]
    params: int
    macs: int
    memory_bytes: int  # Caffe's running "Memory required for data" after this layer
    inserted: bool = False  # a Split layer Caffe inserts itself

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type,
                "tops": [{"name": t.name, "shape": list(t.shape)} for t in self.tops],
                "bottoms": list(self.bottoms), "params": self.params, "macs": self.macs,
                "inserted": self.inserted}


@dataclass
class NetAnalysis:
    name: str
    phase: str
    layers: list[LayerInfo] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def memory_bytes(self) -> int:
        return self.layers[-1].memory_bytes if self.layers else 0

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def to_json(self) -> dict:
        return {"layers": [layer.to_json() for layer in self.layers], "params": self.params,
                "macs": self.macs, "memory_bytes": self.memory_bytes}

    def table(self) -> str:
        rows = [("layer", "type", "top shapes", "params", "MACs")]
        for layer in self.layers:
            shapes = _format_tops(layer.tops)
            rows.append((layer.name, layer.type, shapes, f"{layer.params:,}", f"{layer.macs:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]),
                                    r[2].ljust(widths[2]), r[3].rjust(widths[3]),
                                    r[4].rjust(widths[4])]).rstrip())
            if i == 0:
                lines.append("-" * len(lines[0]))
        lines.append("")
        lines.append(f"net {self.name or '(unnamed)'}, phase {self.phase}, {len(self.layers)} layers")
        lines.append(f"params: {self.params:,} ({self.params / 1e6:.3f} M)")
        lines.append(f"MACs: {self.macs:,} ({self.macs / 1e9:.3f} GMACs)")
        lines.append(f"memory required for data: {self.memory_bytes:,} bytes "
                     f"({self.memory_bytes / 2**20:.1f} MiB)")
        return "\n".join(lines)


def _format_tops(tops: list[TopInfo]) -> str:
    texts = ["x".join(map(str, t.shape)) or "scalar" for t in tops]
    if len(texts) > 1 and len(set(texts)) == 1:
        return f"{texts[0]} (x{len(texts)})"  # a Split's identical copies
    return ", ".join(texts)


# --------------------------------------------------------------------------- analysis

def stated_phase(net: caffe_pb2.NetParameter) -> str:
    """The phase a net's ``state`` names (a Caffe log prints the state it built), or TEST."""
    if net.HasField("state") and net.state.HasField("phase"):
        return caffe_pb2.Phase.Name(net.state.phase)
    return "TEST"


def _source_tops(layer: caffe_pb2.LayerParameter, stated: list[Shape] | None,
                 overrides: dict[int, Shape], where: str) -> list[Shape]:
    """Top shapes of a data layer after --input / named overrides."""
    tops = []
    for j, name in enumerate(layer.top):
        if j in overrides:
            tops.append(overrides[j])
        elif 0 in overrides and layer.type == "Input":
            # Other Input tops keep their stated shape; a single shape serves all tops.
            same = stated is None or stated[j] == stated[0]
            tops.append(overrides[0] if same else stated[j])
        elif 0 in overrides and layer.type != "Python":
            # A data layer's label follows the batch size of the data.
            rest = stated[j][1:] if stated is not None else ()
            tops.append((overrides[0][0],) + rest)
        elif stated is not None:
            tops.append(stated[j])
        else:
            raise AnalysisError(f"{where}: the shape of top {name!r} is not known; give it "
                                f"(e.g. --shape {name}=8x1x512x512)")
    return tops


@dataclass
class _CallerShapes:
    """The sizes the caller gives data layers (--input for the first data top, --shape by
    top name), and which of them a layer has taken."""
    input_shape: Shape | None
    by_name: dict[str, Shape]
    input_used: bool = False
    named_used: set[str] = field(default_factory=set)

    def overrides(self, layer: caffe_pb2.LayerParameter) -> dict[int, Shape]:
        """Top index -> shape the caller gives this layer (a data layer has no bottoms)."""
        overrides: dict[int, Shape] = {}
        if layer.bottom:
            return overrides
        if (self.input_shape is not None and not self.input_used
                and is_data_layer(layer) and layer.top):
            overrides[0] = self.input_shape
            self.input_used = True
        for j, name in enumerate(layer.top):
            if name in self.by_name:
                overrides[j] = self.by_name[name]
                self.named_used.add(name)
        return overrides

    def check_all_used(self, phase: str) -> None:
        if self.input_shape is not None and not self.input_used:
            raise AnalysisError("an input shape was given but the net has no data/Input layer "
                                f"in phase {phase}")
        unused = sorted(set(self.by_name) - self.named_used)
        if unused:
            raise AnalysisError(f"shapes were given for {', '.join(map(repr, unused))}, which no "
                                f"data layer of phase {phase} produces")


def _layer_tops(layer: caffe_pb2.LayerParameter, blobs: dict[str, Shape],
                caller: _CallerShapes, where: str):
    """(cost or None, top shapes): the layer's rule, with the caller's sizes on top; a data
    layer whose rule cannot tell its size is fine when the caller gives it."""
    rule = RULES.get(layer.type)
    if rule is None:
        raise AnalysisError(f"{where}: unknown layer type {layer.type!r}")
    bottoms = [blobs[b] for b in layer.bottom]
    overrides = caller.overrides(layer)
    try:
        cost = rule(layer, bottoms)
        tops = cost.tops
    except ShapeError as exc:
        if not overrides:
            hint = "" if isinstance(exc, NeedsInputShape) else \
                f"; bottom shapes {[list(b) for b in bottoms]}"
            raise AnalysisError(f"{where}: {exc}{hint}") from None
        cost, tops = None, None
    if overrides:
        tops = _source_tops(layer, tops, overrides, where)
    return cost, tops


def _top_names(layer: caffe_pb2.LayerParameter, tops: list[Shape], blobs: dict[str, Shape],
               where: str) -> list[str]:
    """The names of the layer's tops, with Caffe's checks on them."""
    top_names = list(layer.top)
    if len(top_names) < len(tops) and not top_names and layer.type in LOSS_TYPES:
        top_names = [""]  # AutoTopBlobs: Caffe adds an anonymous loss output
    if len(tops) != len(top_names):
        raise AnalysisError(f"{where}: produces {len(tops)} top(s) but names "
                            f"{len(top_names)}")
    for j, name in enumerate(top_names):
        in_place = j < len(layer.bottom) and layer.bottom[j] == name
        if name and name in blobs and not in_place:
            raise AnalysisError(f"{where}: top blob {name!r} produced by multiple sources")
    return top_names


def analyze(net: caffe_pb2.NetParameter | str | os.PathLike, input_shape: Shape | None = None,
            phase: str = "TEST", top_shapes: dict[str, Shape] | None = None) -> NetAnalysis:
    """Infer every top shape, parameter count, MACs and Caffe's data memory.

    ``net`` is a ``NetParameter`` or the path of a prototxt / Caffe log.
    ``input_shape`` (e.g. ``(1, 3, 1024, 2048)``) replaces the shape of the net's first
    data top (Input / old-style input / ImageData / Data / Python data layer ...); it is
    required where the net does not state its input size.  ``top_shapes`` gives the shapes
    of other tops of data layers by name (e.g. a Python layer's ``label``).
    ``phase`` is "TRAIN" or "TEST".
    """
    if isinstance(net, (str, os.PathLike)):
        net = read_net(net)
    if not net.layer and not net.input:
        raise AnalysisError(f"net {net.name or '(unnamed)'}: no layers (an empty or truncated prototxt?)")
    phase = phase.upper()
    caller = _CallerShapes(
        None if input_shape is None else tuple(int(d) for d in input_shape),
        {name: tuple(int(d) for d in shape) for name, shape in (top_shapes or {}).items()})
    prepared, inserted = prepare_net(net, phase)
    result = NetAnalysis(name=net.name, phase=phase)
    blobs: dict[str, Shape] = {}
    memory = 0
    for layer in prepared.layer:
        where = f"layer {layer.name!r} (type {layer.type})"
        cost, tops = _layer_tops(layer, blobs, caller, where)
        infos = [TopInfo(name, tuple(shape))
                 for name, shape in zip(_top_names(layer, tops, blobs, where), tops)]
        for info in infos:
            if info.name:
                blobs[info.name] = info.shape
            memory += info.count * BYTES_PER_FLOAT
        result.layers.append(LayerInfo(
            name=layer.name, type=layer.type, bottoms=list(layer.bottom), tops=infos,
            params=cost.params if cost else 0, macs=cost.macs if cost else 0,
            memory_bytes=memory, inserted=layer.name in inserted and layer.type == "Split"))
    caller.check_all_used(phase)
    return result
