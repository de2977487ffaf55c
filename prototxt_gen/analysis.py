"""Network analysis the way Caffe's ``Net::Init`` sees a net.

``analyze(net, input_shape=None, phase="TEST")`` runs Caffe's own preparation steps on a
``caffe_pb2.NetParameter`` in pure Python -

1. upgrade old-style ``input``/``input_dim``/``input_shape`` fields into an ``Input`` layer
   named "input" at the front (upgrade_proto.cpp ``UpgradeNetInput``),
2. drop layers whose include/exclude rules reject the net state (net.cpp ``FilterNet``;
   note that ``caffe time`` builds the TRAIN phase),
3. insert ``Split`` layers where a blob feeds several bottoms (insert_splits.cpp), with
   Caffe's names ``<blob>_<layer>_<i>_split``,

then sets up every layer with the shape rules of :mod:`prototxt_gen.shapes`, and adds up
each top's count (in-place tops included) x 4 bytes as net.cpp's "Memory required for
data" does.  The result lists each layer with its top shapes, parameters and MACs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from . import caffe_pb2
from .netio import read_net
from .shapes import LOSS_TYPES, RULES, NeedsInputShape, Shape, ShapeError

BYTES_PER_FLOAT = 4
PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}
# Layer types whose first top is the network input that --input replaces.
DATA_TYPES = {"Input", "ImageData", "Data", "MemoryData", "DummyData", "HDF5Data",
              "WindowData", "DenseImageData"}


class AnalysisError(ValueError):
    """The net cannot be set up; the message names the layer and its type."""


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


# --------------------------------------------------------------------------- Caffe's net preparation

def upgrade_net_input(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """UpgradeNetInput: old-style input fields become an Input layer at the front."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    if has_shape or has_dim:
        if has_shape and len(net.input_shape) != len(net.input):
            raise AnalysisError(f"net has {len(net.input)} input(s) but {len(net.input_shape)} "
                                "input_shape(s)")
        if has_dim and not has_shape and len(net.input_dim) != 4 * len(net.input):
            raise AnalysisError(f"net has {len(net.input)} input(s) but {len(net.input_dim)} "
                                "input_dim values (need 4 per input)")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, top in enumerate(net.input):
            layer.top.append(top)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i: 4 * i + 4])
        del out.layer[:]
        out.layer.append(layer)
        out.layer.extend(net.layer)
    elif len(net.input):
        # No shapes at all: Caffe (legacy caffemodel) just drops the fields; nothing feeds
        # those blobs then, so the net cannot be set up without a shape.
        raise AnalysisError(f"input {net.input[0]!r} has no input_dim/input_shape; "
                            "give the input size")
    out.ClearField("input")
    out.ClearField("input_shape")
    out.ClearField("input_dim")
    return out


def _state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    if any(stage in state.stage for stage in rule.not_stage):
        return False
    return True


def filter_net(net: caffe_pb2.NetParameter, phase: str) -> caffe_pb2.NetParameter:
    """FilterNet: keep the layers whose rules accept the state (phase + net's level/stages)."""
    if phase not in PHASES:
        raise AnalysisError(f"unknown phase {phase!r} (use TRAIN or TEST)")
    state = caffe_pb2.NetState()
    state.CopyFrom(net.state)
    state.phase = PHASES[phase]
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    for layer in net.layer:
        if layer_included(layer, state):
            out.layer.append(layer)
    return out


def phase_view(net: caffe_pb2.NetParameter, phase: str = "TEST") -> caffe_pb2.NetParameter:
    """The layers of ``phase`` with their include/exclude rules removed: what an engine that
    ignores phase rules (OpenCV, the ONNX exporter) must be given.  The project's one phase
    filter is :func:`filter_net`; this is it plus dropping the then-meaningless rules."""
    out = filter_net(net, phase)
    for layer in out.layer:
        del layer.include[:], layer.exclude[:]
    return out


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """FilterNet's decision for one layer: do its include/exclude rules accept ``state``?"""
    if len(layer.include) and len(layer.exclude):
        raise AnalysisError(f"layer {layer.name!r} (type {layer.type}): specify either "
                            "include rules or exclude rules; not both")
    included = len(layer.include) == 0
    if any(_state_meets_rule(state, r) for r in layer.exclude):
        included = False
    if any(_state_meets_rule(state, r) for r in layer.include):
        included = True
    return included


def split_layer_name(layer: str, blob: str, top_index: int) -> str:
    return f"{blob}_{layer}_{top_index}_split"


def split_blob_name(layer: str, blob: str, top_index: int, split_index: int) -> str:
    return f"{split_layer_name(layer, blob, top_index)}_{split_index}"


def insert_splits(net: caffe_pb2.NetParameter) -> tuple[caffe_pb2.NetParameter, set[str]]:
    """InsertSplits; returns the new net and the names of the inserted Split layers."""
    last_top: dict[str, tuple[int, int]] = {}
    source_of: dict[tuple[int, int], tuple[int, int]] = {}
    consumers: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(net.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise AnalysisError(f"layer {layer.name!r} (type {layer.type}): unknown bottom "
                                    f"blob {blob!r} (bottom index {j})")
            source_of[(i, j)] = last_top[blob]
            consumers[last_top[blob]] = consumers.get(last_top[blob], 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top = last_top[layer.top[j]]
            loss_weight[top] = layer.loss_weight[j]
            if loss_weight[top]:
                consumers[top] = consumers.get(top, 0) + 1
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    inserted: set[str] = set()
    next_split: dict[tuple[int, int], int] = {}
    for i, original in enumerate(net.layer):
        layer = out.layer.add()
        layer.CopyFrom(original)
        for j in range(len(layer.bottom)):
            top = source_of[(i, j)]
            if consumers.get(top, 0) > 1:
                k = next_split.get(top, 0)
                next_split[top] = k + 1
                layer.bottom[j] = split_blob_name(net.layer[top[0]].name, layer.bottom[j], top[1], k)
        for j, blob in enumerate(layer.top):
            n = consumers.get((i, j), 0)
            if n > 1:
                split = out.layer.add()
                split.name = split_layer_name(layer.name, blob, j)
                split.type = "Split"
                split.bottom.append(blob)
                weight = loss_weight.get((i, j), 0.0)
                for k in range(n):
                    split.top.append(split_blob_name(layer.name, blob, j, k))
                    if weight:
                        split.loss_weight.append(weight if k == 0 else 0.0)
                if weight:
                    layer.ClearField("loss_weight")
                    next_split[(i, j)] = next_split.get((i, j), 0) + 1
                inserted.add(split.name)
    return out, inserted


def prepare_net(net: caffe_pb2.NetParameter, phase: str = "TEST") -> tuple[caffe_pb2.NetParameter, set[str]]:
    """The net Caffe actually sets up: upgraded, filtered by phase, with Split layers."""
    return insert_splits(filter_net(upgrade_net_input(net), phase))


# --------------------------------------------------------------------------- analysis

def parse_input_shape(text: str) -> Shape:
    """"1x3x1024x2048" -> (1, 3, 1024, 2048)."""
    try:
        dims = tuple(int(d) for d in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise ValueError(f"input shape {text!r} is not of the form NxCxHxW (e.g. 1x3x1024x2048)") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"input shape {text!r} must have positive dimensions")
    return dims


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
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
    top_shapes = {name: tuple(int(d) for d in shape) for name, shape in (top_shapes or {}).items()}
    prepared, inserted = prepare_net(net, phase)
    result = NetAnalysis(name=net.name, phase=phase)
    blobs: dict[str, Shape] = {}
    memory = 0
    input_used = False
    named_used: set[str] = set()
    for layer in prepared.layer:
        where = f"layer {layer.name!r} (type {layer.type})"
        rule = RULES.get(layer.type)
        if rule is None:
            raise AnalysisError(f"{where}: unknown layer type {layer.type!r}")
        bottoms = [blobs[b] for b in layer.bottom]
        overrides: dict[int, Shape] = {}
        if not layer.bottom:  # a data layer: its sizes may come from the caller
            if (input_shape is not None and not input_used
                    and (layer.type in DATA_TYPES or layer.type == "Python") and layer.top):
                overrides[0] = input_shape
                input_used = True
            for j, name in enumerate(layer.top):
                if name in top_shapes:
                    overrides[j] = top_shapes[name]
                    named_used.add(name)
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
        infos = [TopInfo(name, tuple(shape)) for name, shape in zip(top_names, tops)]
        for info in infos:
            if info.name:
                blobs[info.name] = info.shape
            memory += info.count * BYTES_PER_FLOAT
        result.layers.append(LayerInfo(
            name=layer.name, type=layer.type, bottoms=list(layer.bottom), tops=infos,
            params=cost.params if cost else 0, macs=cost.macs if cost else 0,
            memory_bytes=memory, inserted=layer.name in inserted and layer.type == "Split"))
    if input_shape is not None and not input_used:
        raise AnalysisError("an input shape was given but the net has no data/Input layer "
                            f"in phase {phase}")
    unused = sorted(set(top_shapes) - named_used)
    if unused:
        raise AnalysisError(f"shapes were given for {', '.join(map(repr, unused))}, which no "
                            f"data layer of phase {phase} produces")
    return result
