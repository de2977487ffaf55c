"""Reading a text input file the user named (a YAML space, a JSON LUT, a CSV, a prototxt).

``Path.read_text`` raises ``UnicodeDecodeError`` on a binary file (a caffemodel, an image,
an LMDB given by mistake), a ``ValueError`` that tools do not expect, so the user got a
traceback.  :func:`read_text` turns both that and an unreadable file into one
:class:`TextFileError` whose message names the file and the problem.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TextFileError", "read_text"]


class TextFileError(ValueError):
    """The file could not be read as text; ``str()`` is ``path: problem``."""


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """The file's text (UTF-8); :class:`TextFileError` when it cannot be read or is binary.

    ``what`` says what the file should have been (e.g. "YAML search space")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TextFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TextFileError(f"{path}: not a {what} (binary or not UTF-8: byte 0x{raw[exc.start]:02x} "
                            f"at offset {exc.start}, line {line})") from None
