"""pycaffe for the training code, through the Caffe build's locator.

``tools.caffe_locate.import_caffe`` (the Caffe build's module) finds our CPU build (or a
user's Caffe with the Interp layer) and imports it; this wrapper turns every way that can
fail into one :class:`CaffeUnavailable` with the reason, so that CLIs print one line and
tests skip with the reason.
"""
from __future__ import annotations

import os

from tools.caffe_locate import import_caffe


class CaffeUnavailable(RuntimeError):
    """pycaffe cannot be imported; the message says why and how to get it."""


_caffe = None


def load_caffe(quiet: bool = True):
    """The ``caffe`` module (imported once).  ``quiet`` keeps glog to warnings and errors
    unless ``GLOG_minloglevel`` is already set."""
    global _caffe
    if _caffe is not None:
        return _caffe
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    # pycaffe itself is imported here, on first use, never at import time: Caffe is optional
    # for everything that does not train or run a net
    try:
        _caffe = import_caffe()
    except Exception as e:  # the locator's own errors, ImportError, a broken build
        raise CaffeUnavailable(f"pycaffe is not available ({e}); run `make caffe`") from None
    if not hasattr(_caffe, "Net"):  # e.g. the repository's caffe/ build folder, not pycaffe
        where = getattr(_caffe, "__path__", None) or getattr(_caffe, "__file__", "?")
        _caffe = None
        raise CaffeUnavailable(f"`import caffe` found no pycaffe (got {where}); run `make caffe`")
    _caffe.set_mode_cpu()
    return _caffe


def caffe_available() -> tuple[bool, str]:
    """(available, reason) without raising."""
    try:
        load_caffe()
        return True, ""
    except CaffeUnavailable as e:
        return False, str(e)
