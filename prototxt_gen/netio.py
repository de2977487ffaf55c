"""Caffe ``NetParameter`` messages to and from prototxt text: the one reader of prototxt files
and of the nets Caffe logs print, and the one writer.

Every reading failure raises :class:`NetReadError`, whose text is one line of the form
``path:line: message`` so that command-line tools can print it as is.  It is a
:class:`NetDefinitionError`, the error of a net that cannot be read or lacks what is asked of
it (netprep's AnalysisError and the exporters' CaffeNetError are ones too).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from google.protobuf import text_format

from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_text

from . import caffe_pb2, unknown_fields

# The line after which Caffe's net.cpp prints the (filtered, upgraded) net it builds.
LOG_NET_MARKER = "Initializing net from parameters:"
# A glog line: severity letter, MMDD (newer glog: YYYYMMDD), time, thread id, file:line]
# glog's LogMessage buffer (kMaxLogMessageLen): a longer message, a big net, is cut without a
# mark; two bytes are kept for the newline and NUL, so a cut message has 29998 bytes before the
# newline glog adds.  An uncut net message ends with the net's own newline: at most 29996
# bytes before it.
GLOG_MAX_MESSAGE_BYTES = 30000
_GLOG_LINE = re.compile(r"^[IWEF]\d{4}(?:\d{4})? \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ")


_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


class NetDefinitionError(InputError, ValueError):
    """A network definition that cannot be read or does not have what is asked of it."""


class NetReadError(NetDefinitionError):
    """A net could not be read; ``str()`` is ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path = path
        self.line = line
        # One line whatever the message quotes (protobuf quotes the offending source line,
        # which may hold a \r, a form feed or U+2028 that terminals and splitlines break at).
        self.message = message = _LINE_BREAKS.sub(" ", message)
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


def parse_net_text(text: str, source: str = "<string>", first_line: int = 1,
                   allow_unknown_fields: bool = False, allow_v1: bool = False) -> caffe_pb2.NetParameter:
    """Parse prototxt ``text``; errors name ``source`` and the line in it.

    ``first_line`` is the line number of ``text``'s first line within ``source``
    (used when the text was cut out of a longer file such as a log).
    ``allow_unknown_fields`` skips fields our schema lacks (e.g. the PSPNet fork's
    ``bn_param``) instead of failing.  ``allow_v1`` accepts the V1 ``layers`` format
    (Caffe itself upgrades it; dfseg's analysis does not).
    """
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=allow_unknown_fields)
    except text_format.ParseError as exc:
        line = exc.GetLine()
        message = str(exc)
        # protobuf prefixes its message with "line:column : "; keep only the column.
        prefix = re.match(r"^(\d+):(\d+) : ", message)
        if prefix:
            message = f"column {prefix.group(2)}: {message[prefix.end():]}"
        absolute = line + first_line - 1 if line is not None else None
        raise NetReadError(source, absolute, message.replace("\n", " ")) from None
    if len(net.layers) and not allow_v1:
        raise NetReadError(source, None, "uses the V1 'layers' format; upgrade it with "
                           "Caffe's upgrade_net_proto_text first")
    if allow_unknown_fields:
        warn_dropped_fields(text, net, source, first_line)
    return net


def warn_dropped_fields(text: str, net: caffe_pb2.NetParameter, source: str, first_line: int = 1,
                        stream=None) -> int:
    """One stderr line per field the lenient parse dropped (file:line, the field, its layer);
    a field that can change top shapes says so loudly.  Returns how many were dropped."""
    stream = stream or sys.stderr
    drops = unknown_fields.dropped_fields(text)
    for drop in drops:
        where = f"{source}:{drop.line + first_line - 1}"
        layer = ""
        if drop.layer_index is not None and drop.layer_index < len(net.layer):
            layer = f" of layer {net.layer[drop.layer_index].name!r} ({net.layer[drop.layer_index].type})"
        if unknown_fields.can_change_shapes(drop, net):
            print(f"WARNING: {where}: dropped unknown field {drop.path!r}{layer}: it CAN CHANGE SHAPES "
                  f"(the fork that defines it may compute other top shapes than these)", file=stream)
        else:
            print(f"warning: {where}: dropped unknown field {drop.path!r}{layer} "
                  f"({drop.message_type} has no such field)", file=stream)
    return len(drops)


def net_text_from_log(text: str, source: str = "<log>", index: int = 0) -> tuple[str, int]:
    """Cut the ``index``-th net printed after "Initializing net from parameters:".

    Returns the prototxt text and the 1-based line number where it starts in the log.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if LOG_NET_MARKER in line]
    if not starts:
        raise NetReadError(source, None, f"no {LOG_NET_MARKER!r} line in this log")
    if index >= len(starts):
        raise NetReadError(source, None,
                           f"the log prints {len(starts)} net(s); there is no net #{index}")
    begin = starts[index] + 1
    end = begin
    while end < len(lines) and not _GLOG_LINE.match(lines[end]):
        end += 1
    message = "\n".join(lines[starts[index]:end])
    if len(message.encode("utf-8", errors="replace")) >= GLOG_MAX_MESSAGE_BYTES - 3:
        raise NetReadError(source, end, f"the log's net is cut (glog prints at most "
                           f"{GLOG_MAX_MESSAGE_BYTES} bytes of a message, this net is longer): pass "
                           "the prototxt Caffe was given instead (in the phase the log names, e.g. "
                           "--phase TRAIN for a `caffe time` log)")
    return "\n".join(lines[begin:end]) + "\n", begin + 1


def net_from_log(text: str, source: str = "<log>", index: int = 0,
                 allow_unknown_fields: bool = False) -> caffe_pb2.NetParameter:
    """The ``index``-th net a Caffe log printed after "Initializing net from parameters:"."""
    net_text, first_line = net_text_from_log(text, source, index)
    return parse_net_text(net_text, source, first_line, allow_unknown_fields)


def looks_like_log(text: str) -> bool:
    return LOG_NET_MARKER in text


def read_net(path: str | Path, allow_unknown_fields: bool = False,
             log_index: int = 0) -> caffe_pb2.NetParameter:
    """Read a net from a prototxt file or from a Caffe log that printed one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NetReadError(str(path), None, f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise NetReadError(str(path), line, "not a text file (invalid UTF-8); "
                           "binary .caffemodel files are not prototxts") from None
    if looks_like_log(text):
        return net_from_log(text, str(path), log_index, allow_unknown_fields)
    return parse_net_text(text, str(path), 1, allow_unknown_fields)


def check_prototxt(path: str | os.PathLike) -> None:
    """Fail as Caffe would on a prototxt it cannot parse, but with the reason: Caffe's own
    message is "Failed to parse NetParameter file", the line and field are only in its log.
    A binary file (a caffemodel passed by mistake) is named as such; V1 nets pass (Caffe
    upgrades them)."""
    try:
        text = read_text(path, "prototxt (text)")
    except TextFileError as e:
        raise NetDefinitionError(str(e)) from None
    parse_net_text(text, str(path), allow_v1=True)


def write_net(net: caffe_pb2.NetParameter, path: str | os.PathLike) -> Path:
    """Write ``net`` as a prototxt; the old file stays until the new one is complete."""
    return atomic_write_text(path, text_format.MessageToString(net))
