"""The one size convention: a size a user types or reads is ``HxW`` (``1024x2048``)."""
from __future__ import annotations

import re

from dfseg.base.errors import InputError

__all__ = ["SizeError", "format_hxw", "parse_hxw", "parse_hxw_list", "parse_nchw", "parse_shape"]

_HXW = re.compile(r"^\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*$")


class SizeError(InputError, ValueError):
    pass


def parse_hxw(text: str) -> tuple[int, int]:
    """``"1024x2048"`` -> ``(1024, 2048)``: height first, then width. ASCII digits only."""
    match = _HXW.match(text) if text.isascii() else None
    if not match:
        raise SizeError(f"size {text!r}: expected HxW in ASCII digits, e.g. 1024x2048")
    h, w = int(match.group(1)), int(match.group(2))
    if h <= 0 or w <= 0:
        raise SizeError(f"size {text!r}: height and width must be positive")
    return h, w


def parse_hxw_list(text: str, what: str = "sizes") -> list[tuple[int, int]]:
    """``"360x640,1024x2048"`` -> ``[(360, 640), (1024, 2048)]``: comma-separated HxW, each as
    :func:`parse_hxw`, a repeated size kept once (in its first place).  An empty part (a
    stray comma) is an error, as is an empty list; `what` names the option in the message."""
    try:
        sizes = [parse_hxw(part) for part in text.split(",")]
    except SizeError as err:
        raise SizeError(f"{what}: {err}") from None
    return list(dict.fromkeys(sizes))


_NCHW = re.compile(r"^\s*[0-9]+(\s*[xX]\s*[0-9]+){3}\s*$")


def parse_nchw(text: str) -> tuple[int, int, int, int]:
    """``"1x3x1024x2048"`` -> ``(1, 3, 1024, 2048)``: a blob shape N x C x H x W, ASCII
    digits, every dimension at least 1."""
    return _dims(text, _NCHW, "input shape", "expected NxCxHxW in ASCII digits, e.g. 1x3x1024x2048")


_SHAPE = re.compile(r"^\s*[0-9]+(\s*[xX]\s*[0-9]+)*\s*$")


def parse_shape(text: str) -> tuple[int, ...]:
    """``"8x1x512x512"`` -> ``(8, 1, 512, 512)``, ``"8"`` -> ``(8,)``: a blob shape of any
    number of axes (a label blob may have one), ASCII digits, every dimension at least 1."""
    return _dims(text, _SHAPE, "shape", "expected dimensions separated by x (NxCxHxW, e.g. "
                 "1x3x1024x2048) in ASCII digits")


def _dims(text: str, pattern: re.Pattern, what: str, expected: str) -> tuple[int, ...]:
    if not (text.isascii() and pattern.match(text)):
        raise SizeError(f"{what} {text!r}: {expected}")
    dims = tuple(int(d) for d in re.split(r"[xX]", text))
    if min(dims) < 1:
        raise SizeError(f"{what} {text!r}: every dimension must be at least 1")
    return dims


def format_hxw(size: tuple[int, int]) -> str:
    h, w = size
    return f"{h}x{w}"
