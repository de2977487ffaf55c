"""Caffe network definitions as `caffe_pb2.NetParameter` messages: read, write, swap the
data layer for an Input layer, and load into pycaffe.

Everything here works on parsed messages (dfseg's schema, `prototxt_gen.caffe_pb2`), never
on prototxt text.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from google.protobuf import text_format

from prototxt_gen import analysis, caffe_pb2, netio
from dfseg.base.atomic import atomic_write_text
from dfseg.base.textfile import TextFileError, read_text

# Layers that read a dataset: replaced by an Input layer to run a net without data.
DATA_LAYER_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                    "DummyData", "Input", "Python", "DenseImageData"}


class NetDefinitionError(ValueError):
    """A network definition that cannot be read or does not have what is asked of it."""


def read_net(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Parse a prototxt file (or a Caffe log printing a net) into a NetParameter.

    The reading is `prototxt_gen.netio.read_net`'s; its one-line ``file:line: message`` error
    is raised as :class:`NetDefinitionError`, which this module's callers catch."""
    try:
        return netio.read_net(path)
    except netio.NetReadError as e:
        raise NetDefinitionError(str(e)) from None


def check_prototxt(path: str | os.PathLike) -> None:
    """Fail as Caffe would on a prototxt it cannot parse, but with the reason: Caffe's own
    message is "Failed to parse NetParameter file", the line and field are only in its log.
    A binary file (a caffemodel passed by mistake) is named as such; V1 nets pass (Caffe
    upgrades them)."""
    try:
        text = read_text(path, "prototxt (text)")
    except TextFileError as e:
        raise NetDefinitionError(str(e)) from None
    try:
        netio.parse_net_text(text, str(path), allow_v1=True)
    except netio.NetReadError as e:
        raise NetDefinitionError(str(e)) from None


def write_net(net: caffe_pb2.NetParameter, path: str | os.PathLike) -> None:
    atomic_write_text(path, text_format.MessageToString(net))


def legacy_inputs_to_layer(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Copy of `net` with old-style `input:`/`input_dim:`/`input_shape` turned into an Input layer
    (Caffe's UpgradeNetInput, as prototxt_gen.analysis does it)."""
    try:
        return analysis.upgrade_net_input(net)
    except analysis.AnalysisError as e:
        raise NetDefinitionError(f"net {net.name!r}: {e}") from None


def with_input_layer(net: caffe_pb2.NetParameter,
                     shapes: dict[str, tuple[int, ...]]) -> caffe_pb2.NetParameter:
    """Copy of `net` whose data layers producing the blobs in `shapes` are replaced by one
    Input layer giving each blob its shape (e.g. {"data": (1, 3, 1024, 2048), "label": ...})."""
    net = legacy_inputs_to_layer(net)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    replaced = set()
    for layer in net.layer:
        if layer.type in DATA_LAYER_TYPES and set(layer.top) & shapes.keys():
            replaced.update(layer.top)
            continue
        out.layer.append(layer)
    missing = shapes.keys() - replaced
    if missing:
        raise NetDefinitionError(f"net {net.name!r}: no data layer produces {sorted(missing)}")
    unshaped = replaced - shapes.keys()
    if unshaped:
        raise NetDefinitionError(f"net {net.name!r}: the data layer also produces {sorted(unshaped)}; "
                                 "give a shape for it too")
    layer = caffe_pb2.LayerParameter(name="input", type="Input", top=list(shapes))
    for dims in shapes.values():
        layer.input_param.shape.add(dim=list(dims))
    final = caffe_pb2.NetParameter()
    final.CopyFrom(out)
    del final.layer[:]
    final.layer.append(layer)
    final.layer.extend(out.layer)
    return final


def load_net(caffe, net: caffe_pb2.NetParameter, phase: str = "TEST",
             weights: str | os.PathLike | None = None):
    """A pycaffe `caffe.Net` for the message `net` (pycaffe only reads files: a temporary
    prototxt carries it over)."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(net))
    try:
        phase_value = {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST}[phase]
        if weights is None:
            return caffe.Net(f.name, phase_value)
        return caffe.Net(f.name, phase_value, weights=str(weights))
    finally:
        os.unlink(f.name)
