"""The fields ``--allow-unknown-fields`` drops: which, where, and whether they can change shapes.

protobuf's text parser skips unknown fields without a word.  A fork's field is not always
harmless: ``pooling_param { ceil_mode: false }`` (a floor-rounding fork) gives 3x3 in that
fork's Caffe and 4x4 in ours once dropped.  :func:`dropped_fields` walks a prototxt that
parsed leniently, with the schema's descriptors, and lists every field the schema lacks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import caffe_pb2

# LayerParameter fields whose values the shape rules (prototxt_gen.shapes) read for top shapes.
SHAPE_PARAMS = frozenset({
    "convolution_param", "pooling_param", "interp_param", "upsample_param", "crop_param",
    "concat_param", "slice_param", "reshape_param", "flatten_param", "inner_product_param",
    "input_param", "dummy_data_param", "memory_data_param", "image_data_param",
    "dense_image_data_param", "transform_param", "argmax_param", "reduction_param", "tile_param",
})
# Layer types whose top shapes depend on their parameters (a dropped layer-level field of a
# fork, e.g. its own pooling message, can change them).
SHAPE_TYPES = frozenset({
    "Convolution", "Deconvolution", "Pooling", "Interp", "Upsample", "Crop", "Concat", "Slice",
    "Reshape", "Flatten", "InnerProduct", "Input", "DummyData", "MemoryData", "ImageData",
    "DenseImageData", "Data", "ArgMax", "Reduction", "Tile",
})

_TOKEN = re.compile(r"""\#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>\[\]:,;]|[^\s{}<>\[\]:,;"'#]+""")
_CLOSING = {"{": "}", "<": ">"}


@dataclass(frozen=True)
class DroppedField:
    line: int                 # 1-based, in the text walked
    path: str                 # e.g. layer[3].pooling_param.ceil_mode
    message_type: str         # the message that lacks the field, e.g. caffe.PoolingParameter
    layer_index: int | None   # the layer it sits in, if any
    under: str | None         # the LayerParameter field it sits under (pooling_param), or None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def dropped_fields(text: str) -> list[DroppedField]:
    """Every field of ``text`` (a NetParameter prototxt that parses with unknown fields
    allowed) that the schema lacks, in text order."""
    tokens = [(m.group(), text.count("\n", 0, m.start()) + 1) for m in _TOKEN.finditer(text)
              if not m.group().startswith("#")]
    walker = _Walker(tokens)
    walker.message(caffe_pb2.NetParameter.DESCRIPTOR, None, "", None, None)
    return walker.dropped


def can_change_shapes(drop: DroppedField, net: caffe_pb2.NetParameter) -> bool:
    """Whether the dropped field may have changed top shapes in the fork that defined it."""
    if drop.layer_index is None or drop.layer_index >= len(net.layer):
        return False
    if drop.under is not None:
        return drop.under in SHAPE_PARAMS
    return net.layer[drop.layer_index].type in SHAPE_TYPES


class _Walker:
    def __init__(self, tokens: list[tuple[str, int]]):
        self.tokens, self.pos, self.dropped = tokens, 0, []

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def _take(self) -> str | None:
        tok = self._peek()
        self.pos += 1
        return tok

    def message(self, desc, closing, path, layer, under) -> None:
        counts: dict[str, int] = {}
        while self._peek() is not None and self._peek() != closing:
            name, line = self.tokens[self.pos]
            self.pos += 1
            if name == "[":                       # an extension or Any type URL: skip its name
                while self._peek() not in (None, "]"):
                    self.pos += 1
                self.pos += 1
                field = None
            else:
                field = desc.fields_by_name.get(name)
            index = counts.get(name, 0)
            counts[name] = index + 1
            here_layer = index if (desc is caffe_pb2.NetParameter.DESCRIPTOR and name == "layer") else layer
            here_under = name if (desc is caffe_pb2.LayerParameter.DESCRIPTOR and under is None) else under
            step = f"{name}[{index}]" if name == "layer" and field is not None else name
            here = f"{path}.{step}" if path else step
            if field is None:
                self.dropped.append(DroppedField(line, here, desc.full_name, layer,
                                                 under if desc is not caffe_pb2.LayerParameter.DESCRIPTOR else None))
            sub = field.message_type if field is not None else None
            if self._peek() == ":":
                self.pos += 1
            self._value(sub, here, here_layer, here_under)
            if self._peek() in (",", ";"):
                self.pos += 1
        self.pos += 1                            # the closing bracket (or past the end)

    def _value(self, sub, path, layer, under) -> None:
        tok = self._take()
        if tok in _CLOSING:
            self._message_or_skip(sub, _CLOSING[tok], path, layer, under)
        elif tok == "[":                         # short repeated form: [1, 2] or [{...}, {...}]
            while self._peek() not in (None, "]"):
                if self._peek() == ",":
                    self.pos += 1
                else:
                    self._value(sub, path, layer, under)
            self.pos += 1
        elif tok is not None and tok[0] in "\"'":
            while (self._peek() or " ")[0] in "\"'":   # adjacent strings concatenate
                self.pos += 1
        elif tok == "-" and self._peek() is not None:  # "- 1" is one negative number
            self.pos += 1

    def _message_or_skip(self, sub, closing, path, layer, under) -> None:
        if sub is not None:
            self.message(sub, closing, path, layer, under)
            return
        depth = 1                                # an unknown message: skip it whole
        while depth and self._peek() is not None:
            tok = self._take()
            if tok in _CLOSING:
                depth += 1
            elif tok in ("}", ">"):
                depth -= 1
