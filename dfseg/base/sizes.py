"""The one size convention: a size a user types or reads is ``HxW`` (``1024x2048``)."""
from __future__ import annotations

import re

from dfseg.base.errors import InputError

__all__ = ["SizeError", "format_hxw", "parse_hxw", "parse_nchw"]

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


_NCHW = re.compile(r"^\s*[0-9]+(\s*[xX]\s*[0-9]+){3}\s*$")


def parse_nchw(text: str) -> tuple[int, int, int, int]:
    """``"1x3x1024x2048"`` -> ``(1, 3, 1024, 2048)``: a blob shape N x C x H x W, ASCII
    digits, every dimension at least 1."""
    if not (text.isascii() and _NCHW.match(text)):
        raise SizeError(f"input shape {text!r}: expected NxCxHxW in ASCII digits, e.g. "
                        f"1x3x1024x2048")
    dims = tuple(int(d) for d in re.split(r"[xX]", text))
    if min(dims) < 1:
        raise SizeError(f"input shape {text!r}: every dimension must be at least 1")
    return dims


def format_hxw(size: tuple[int, int]) -> str:
    h, w = size
    return f"{h}x{w}"
