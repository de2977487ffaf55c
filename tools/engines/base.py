"""The contract every engine fulfils (Caffe, OpenCV DNN, ONNX Runtime, TensorRT)."""
from __future__ import annotations

from typing import Callable, Protocol as _Protocol


class EngineError(RuntimeError):
    """The engine cannot prepare or run a net; the message is the one line to show."""


class Engine(_Protocol):
    """``prepare(net)`` does all the one-off work (write files, load, build) and returns a
    callable that runs ONE forward pass; the timing protocol owns the clock and the loop, so
    every engine is timed the same way."""

    name: str

    def prepare(self, net) -> Callable[[], None]: ...

    def describe(self) -> dict: ...
