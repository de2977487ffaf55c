"""The one size convention: a size a user types or reads is ``HxW`` (``1024x2048``)."""
from __future__ import annotations

import re

__all__ = ["SizeError", "format_hxw", "parse_hxw"]

_HXW = re.compile(r"^\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*$")


class SizeError(ValueError):
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


def format_hxw(size: tuple[int, int]) -> str:
    h, w = size
    return f"{h}x{w}"
