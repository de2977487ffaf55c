"""The contract every engine fulfils (Caffe's `caffe time` binary, pycaffe, OpenCV DNN, ONNX
Runtime, TensorRT).

``engine.prepare(net)`` does all the one-off work (write files, load, build) and returns a
:class:`PreparedRun`: calling it runs ONE forward pass, so the timing protocol
(tools.engines.protocol) owns the clock and the loop and every engine is timed alike.  Engines
whose figures come from their own clock (``caffe time``'s average, TensorRT's CUDA events) also
offer ``timed(n)``: n passes, returning the engine's own per-pass samples in ms.
``engine.describe()`` names the engine, its version, its threads and clock, and the machine.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from dfseg.base.errors import InputError

from .machine import describe_machine

__all__ = ["Engine", "EngineError", "PreparedRun"]


class EngineError(InputError, RuntimeError):
    """The engine cannot prepare or run a net (not installed here, a layer it lacks, a net it
    refuses); the message is the one line to show, and a command exits 2 on it."""


class PreparedRun:
    """One net loaded on one engine."""

    #: n passes timed by the engine's own clock -> samples in ms (None: the protocol's clock)
    timed: Callable[[int], list[float]] | None = None

    def __call__(self) -> None:
        raise NotImplementedError

    def outputs(self) -> dict[str, np.ndarray]:
        """Run once and return the net's output blobs (for checks against another engine)."""
        raise EngineError(f"{type(self).__name__} does not return outputs")

    def close(self) -> None:
        """Release files and memory (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Engine:
    name = "?"
    #: what the figures are measured with: "protocol" (tools.engines.protocol's clock) or the
    #: engine's own clock ("caffe time", "cuda-events")
    clock = "protocol"

    def __init__(self, threads: int = 1):
        if threads < 1:
            raise EngineError(f"engine {self.name}: threads must be >= 1, got {threads}")
        self.threads = threads

    def version(self) -> str:
        raise NotImplementedError

    def prepare(self, net) -> PreparedRun:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"engine": self.name, "version": self.version(), "threads": self.threads,
                "clock": self.clock, **describe_machine()}
