"""The parts every shape rule shares: the cost record, Caffe's errors and integer helpers,
the checks, and the registry the rules add themselves to."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from dfseg.base.errors import InputError

from .. import caffe_pb2

Shape = tuple[int, ...]


class ShapeError(InputError, ValueError):
    """The layer cannot be set up on these bottoms (Caffe would abort)."""


class NeedsInputShape(ShapeError):
    """A data layer whose output size only the data itself could tell."""


@dataclass
class LayerCost:
    tops: list[Shape]
    params: int = 0
    macs: int = 0
    notes: list[str] = field(default_factory=list)


def count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    return math.prod(shape[start:end])


def trunc_div(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def canonical_axis(axis: int, num_axes: int) -> int:
    """Blob::CanonicalAxisIndex."""
    if not -num_axes <= axis < num_axes:
        raise ShapeError(f"axis {axis} out of range for a {num_axes}-axis blob")
    return axis + num_axes if axis < 0 else axis


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ShapeError(message)


EMPTY_OUTPUT = "output shape {} is empty"


def _check_shape(shape: Shape) -> Shape:
    # Caffe aborts on negative sizes; it may accept an empty (zero-size) blob, but then most
    # layers abort on it (e.g. Convolution's bias multiplier), so we refuse both.
    _check(all(d > 0 for d in shape), EMPTY_OUTPUT.format(list(shape)) + " (input too small "
           "for the kernel/stride/pad?)" if all(d >= 0 for d in shape)
           else f"negative dimension in output shape {list(shape)}")
    return tuple(int(d) for d in shape)


def _bottoms(bottoms: list[Shape], exact: int | None = None, minimum: int | None = None) -> None:
    if exact is not None:
        _check(len(bottoms) == exact, f"needs {exact} bottom(s), has {len(bottoms)}")
    if minimum is not None:
        _check(len(bottoms) >= minimum, f"needs at least {minimum} bottom(s), has {len(bottoms)}")


RULES: dict[str, Callable[[caffe_pb2.LayerParameter, list[Shape]], LayerCost]] = {}


def rule(*types: str):
    def register(fn):
        for t in types:
            RULES[t] = fn
        return fn
    return register
