"""A network definition held as a message (`caffe_pb2.NetParameter`) loaded into pycaffe.

pycaffe reads nets only from files: a temporary prototxt carries the message over.  The
`caffe` module is passed in (found at run time by tools.runtime.caffe), so importing this
needs no Caffe build.
"""
from __future__ import annotations

import os
import tempfile

from google.protobuf import text_format

from prototxt_gen import caffe_pb2

__all__ = ["load_net"]


def load_net(caffe, net: caffe_pb2.NetParameter, phase: str = "TEST",
             weights: str | os.PathLike | None = None):
    """A pycaffe `caffe.Net` for the message `net` in `phase` (TRAIN or TEST), with the
    caffemodel `weights` when given."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(net))
    try:
        phase_value = {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST}[phase]
        if weights is None:
            return caffe.Net(f.name, phase_value)
        return caffe.Net(f.name, phase_value, weights=str(weights))
    finally:
        os.unlink(f.name)
