"""Floor 2: the engine layer (one contract for every engine) and the one timing protocol.

- :mod:`tools.engines.base`: the contract an engine fulfils -- ``prepare(net)`` returns a
  callable running one forward pass, ``describe()`` names the engine and platform.
- :mod:`tools.engines.protocol`: warm-up, repeats, interleaved rounds for comparisons,
  median / min / bootstrap 95 % interval of each time and of each ratio, busy warning.

The concrete engines (Caffe binary and pycaffe, OpenCV DNN, ONNX Runtime, TensorRT) are still
in tools/bench.py, tools/caffe_time.py, tools/ort_bench.py, tools/tensorrt_bench.py and
pop/backends.py; moving them here is the rest of issue 10 (not done yet).
"""
from .base import Engine, EngineError
from .protocol import Protocol, Timing, compare, ratio_interval, summarize, time_one

__all__ = ["Engine", "EngineError", "Protocol", "Timing", "compare", "ratio_interval",
           "summarize", "time_one"]
