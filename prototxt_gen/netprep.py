"""Caffe's preparation of a net before it sets up a layer (``Net::Init``): the upgrade of
old-style inputs (upgrade_proto.cpp ``UpgradeNetInput``), the phase filter (net.cpp
``FilterNet``) and the inserted ``Split`` layers (insert_splits.cpp); and the one hand-over
of a net's data layers to an Input layer: of given shapes for every data blob
(:func:`with_input_layer`), or of one shape for the image blob alone, the label side dropped
(:func:`with_image_input`, as `caffe time` and a deployed net see a net)."""
from __future__ import annotations

from . import caffe_pb2
from .netio import NetDefinitionError
from .shapes.catalogue import is_data_layer, is_scoring_layer

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


class AnalysisError(NetDefinitionError):
    """The net cannot be set up; the message names the layer and its type."""


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


def with_input_layer(net: caffe_pb2.NetParameter,
                     shapes: dict[str, tuple[int, ...]]) -> caffe_pb2.NetParameter:
    """Copy of ``net`` whose data layers producing the blobs in ``shapes`` are replaced by one
    Input layer giving each blob its shape (e.g. {"data": (1, 3, 1024, 2048), "label": ...});
    old-style input fields count as a data layer."""
    try:
        net = upgrade_net_input(net)
    except AnalysisError as e:
        raise AnalysisError(f"net {net.name!r}: {e}") from None
    kept, replaced = [], set()
    for layer in net.layer:
        if is_data_layer(layer) and set(layer.top) & shapes.keys():
            replaced.update(layer.top)
        else:
            kept.append(layer)
    missing = shapes.keys() - replaced
    if missing:
        raise AnalysisError(f"net {net.name!r}: no data layer produces {sorted(missing)}")
    unshaped = replaced - shapes.keys()
    if unshaped:
        raise AnalysisError(f"net {net.name!r}: the data layer also produces {sorted(unshaped)}; "
                            "give a shape for it too")
    layer = caffe_pb2.LayerParameter(name="input", type="Input", top=list(shapes))
    for dims in shapes.values():
        layer.input_param.shape.add(dim=list(dims))
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    out.layer.append(layer)
    out.layer.extend(kept)
    return out


def with_image_input(net: caffe_pb2.NetParameter, shape: tuple[int, ...],
                     phase: str | None = None) -> caffe_pb2.NetParameter:
    """Copy of ``net`` fed by one Input layer of ``shape`` for its image blob (the first top of
    its first data layer, or its first old-style input); the other data blobs (labels) go, with
    every layer that reads them and, transitively, what reads those.  With ``phase``, the layers
    Caffe would not run in that phase, and the evaluation and loss layers, go too and the rest
    lose their include/exclude rules (a deploy net); without it every phase's layers stay (what
    `caffe time --phase` then filters itself)."""
    data_layers = [layer for layer in net.layer if is_data_layer(layer)]
    if net.input:
        image, unavailable = net.input[0], set(net.input[1:])
    elif data_layers:
        image = data_layers[0].top[0]
        unavailable = {t for layer in data_layers for t in layer.top} - {image}
    else:
        raise AnalysisError(f"net {net.name!r} has no data layer or input to resize")
    state = caffe_pb2.NetState(phase=PHASES[phase]) if phase else None
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.input[:], out.input_dim[:], out.input_shape[:], out.layer[:]
    entry = out.layer.add(name="input", type="Input", top=[image])
    entry.input_param.shape.add(dim=[int(d) for d in shape])
    for layer in net.layer:
        if is_data_layer(layer) or (state is not None and not layer_included(layer, state)):
            continue
        if unavailable & set(layer.bottom) or (state is not None and is_scoring_layer(layer)):
            unavailable.update(layer.top)
            continue
        kept = out.layer.add()
        kept.CopyFrom(layer)
        if state is not None:
            kept.ClearField("include")
            kept.ClearField("exclude")
    return out
