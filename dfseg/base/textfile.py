"""Reading a text input file the user named (a YAML space, a JSON LUT, a CSV, a prototxt).

``Path.read_text`` raises ``UnicodeDecodeError`` on a binary file (a caffemodel, an image,
an LMDB given by mistake), a ``ValueError`` that tools do not expect, so the user got a
traceback.  :func:`read_text` turns both that and an unreadable file into one
:class:`TextFileError` whose message names the file and the problem; :func:`read_json` and
:func:`read_yaml` do the same for a file that is text but not the format it should be, so
each reader of a JSON or YAML input only turns the one error into its own.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from dfseg.base.errors import InputError

__all__ = ["TextFileError", "read_json", "read_text", "read_yaml"]


class TextFileError(InputError, ValueError):
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


def read_json(path: str | os.PathLike, what: str = "JSON file", mapping: bool = False):
    """The file parsed as JSON; :class:`TextFileError` naming the file and the line where the
    JSON breaks (an empty or truncated file is an error, never an empty document).  With
    `mapping`, anything but a JSON object is an error too."""
    text = read_text(path, what)
    if not text.strip():
        raise TextFileError(f"{Path(path)}: not a {what} (empty)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TextFileError(f"{Path(path)}: not a {what} (not JSON: {exc.msg}, line {exc.lineno})") from None
    return _checked_mapping(data, path, what, "a JSON object") if mapping else data


def read_yaml(path: str | os.PathLike, what: str = "YAML file", mapping: bool = False):
    """The file parsed as YAML (safe loader); :class:`TextFileError` naming the file and the
    parser's first line of complaint.  An empty file is an error: it holds no document.  With
    `mapping`, anything but a YAML mapping is an error too."""
    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TextFileError(f"{Path(path)}: not a {what} (not YAML: {str(exc).splitlines()[0]})") from None
    if data is None:
        raise TextFileError(f"{Path(path)}: not a {what} (empty)")
    return _checked_mapping(data, path, what, "a YAML mapping") if mapping else data


def _checked_mapping(data, path, what: str, expected: str) -> dict:
    if not isinstance(data, dict):
        raise TextFileError(f"{Path(path)}: not a {what} ({expected} expected, found a {type(data).__name__})")
    return data
