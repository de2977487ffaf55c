"""Compare two Caffe nets as parsed messages, layer for layer and field for field.

Two nets are equal when they would make the same Caffe net:

- a field explicitly set to its default value counts as unset, recursively (an
  all-default sub-message counts as absent); repeated convolution ``pad``/``stride``/
  ``dilation`` lists that only repeat Caffe's implicit default (0/1/1) count as unset too;
- except where Caffe reads the field's *presence* (``has_...()``) and an explicit default
  therefore changes the net, e.g. ``include { phase: TRAIN }``, Interp's
  ``zoom_factor: 1``, ArgMax's ``axis: 0``, BatchNorm's ``use_global_stats: false``;
- the data layers' list/database path (``image_data_param.source``, ``data_param.source``)
  is ignored: it names the machine's files, not the net.
"""
from __future__ import annotations

import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from . import caffe_pb2

# (message full name, field name): fields whose presence Caffe tests with has_...().
PRESENCE_SIGNIFICANT = {
    ("caffe.NetStateRule", "phase"),
    ("caffe.NetStateRule", "min_level"),
    ("caffe.NetStateRule", "max_level"),
    ("caffe.InterpParameter", "height"),
    ("caffe.InterpParameter", "width"),
    ("caffe.InterpParameter", "zoom_factor"),
    ("caffe.InterpParameter", "shrink_factor"),
    ("caffe.ArgMaxParameter", "axis"),
    ("caffe.ConcatParameter", "concat_dim"),
    ("caffe.SliceParameter", "slice_dim"),
    ("caffe.LossParameter", "normalize"),
    ("caffe.BatchNormParameter", "use_global_stats"),
}

# Repeated fields with a default that lives in Caffe's C++ rather than in caffe.proto.
REPEATED_DEFAULTS = {
    ("caffe.ConvolutionParameter", "pad"): 0,
    ("caffe.ConvolutionParameter", "stride"): 1,
    ("caffe.ConvolutionParameter", "dilation"): 1,
}

# Paths that name files on the authors' machines, not parts of the net.
IGNORED_LAYER_FIELDS = (("image_data_param", "source"), ("data_param", "source"))


def _is_message(field: FieldDescriptor) -> bool:
    return field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)


def _is_repeated(field: FieldDescriptor) -> bool:
    # FieldDescriptor.label is deprecated in recent protobuf releases.
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def strip_defaults(message) -> None:
    """Clear, in place and recursively, every field that only restates a default."""
    full_name = message.DESCRIPTOR.full_name
    for field, value in list(message.ListFields()):
        key = (full_name, field.name)
        if _is_message(field):
            if _is_repeated(field):
                for item in value:
                    strip_defaults(item)
            else:
                strip_defaults(value)
                if value.ByteSize() == 0:
                    message.ClearField(field.name)
        elif _is_repeated(field):
            default = REPEATED_DEFAULTS.get(key)
            if default is not None and all(v == default for v in value):
                message.ClearField(field.name)
        elif key not in PRESENCE_SIGNIFICANT and value == field.default_value:
            message.ClearField(field.name)


def normalized(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of ``net`` with defaults stripped and data-layer sources removed."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        for param, name in IGNORED_LAYER_FIELDS:
            if layer.HasField(param):
                getattr(layer, param).ClearField(name)
    strip_defaults(out)
    return out


def _show(field: FieldDescriptor, value) -> str:
    key = (field.containing_type.full_name, field.name)
    if value is None:
        if _is_message(field) or key in PRESENCE_SIGNIFICANT:
            return "<unset>"
        return f"{_show_scalar(field, field.default_value)} (default)"
    if _is_repeated(field) and not _is_message(field):
        if not value and key in REPEATED_DEFAULTS:
            return f"[] (default {REPEATED_DEFAULTS[key]})"
        return "[" + ", ".join(_show_scalar(field, v) for v in value) + "]"
    if _is_message(field):
        text = text_format.MessageToString(value, as_one_line=True).strip()
        return "{" + text + "}" if text else "{}"
    return _show_scalar(field, value)


def _show_scalar(field: FieldDescriptor, value) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        item = field.enum_type.values_by_number.get(value)
        return item.name if item else str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return str(np.float32(value))  # shortest text that reads back as the same float32
    return repr(value)


def _field_value(message, field: FieldDescriptor):
    if _is_repeated(field):
        return list(getattr(message, field.name))
    return getattr(message, field.name) if message.HasField(field.name) else None


def _diff_messages(a, b, path: str, out: list[str]) -> None:
    fields = {f.number: f for f, _ in a.ListFields()}
    fields.update({f.number: f for f, _ in b.ListFields()})
    for number in sorted(fields):
        field = fields[number]
        here = f"{path}{'' if path.endswith(' ') else '.'}{field.name}" if path else field.name
        va, vb = _field_value(a, field), _field_value(b, field)
        if _is_message(field) and _is_repeated(field):
            for i in range(max(len(va), len(vb))):
                item_path = f"{here}[{i}]"
                if field.name == "layer" and not path:
                    named = va[i] if i < len(va) else vb[i]
                    item_path = f"layer[{i}] {named.name!r} "
                if i >= len(va) or i >= len(vb):
                    out.append(f"{item_path.rstrip()}: A={_show(field, va[i] if i < len(va) else None)} "
                               f"B={_show(field, vb[i] if i < len(vb) else None)}")
                else:
                    _diff_messages(va[i], vb[i], item_path, out)
        elif _is_message(field):
            # An unset sub-message reads as its all-default instance: compare inside it
            # so the report names the leaf field and its default.
            _diff_messages(getattr(a, field.name), getattr(b, field.name), here, out)
        elif va != vb:
            out.append(f"{here}: A={_show(field, va)} B={_show(field, vb)}")


def compare_nets(a: caffe_pb2.NetParameter, b: caffe_pb2.NetParameter) -> list[str]:
    """Differences between two nets, one line each ("<where>: A=<value> B=<value>");
    empty when they are equal up to defaults and data-layer sources."""
    differences: list[str] = []
    _diff_messages(normalized(a), normalized(b), "", differences)
    return differences
