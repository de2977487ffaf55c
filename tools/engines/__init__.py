"""Floor 2: the engine layer -- one contract for every engine, one timing protocol.

- :mod:`tools.engines.base`: the contract (``prepare(net)`` -> a run of one forward pass,
  ``describe()``), :mod:`tools.engines.nets`: what every engine is given (inference view,
  shapes from prototxt_gen.shapes, the one set of random weights, one input);
- engines: ``caffe-time`` (the real ``caffe time`` binary, as the paper timed), ``pycaffe``,
  ``opencv`` (OpenCV DNN), ``onnxruntime``, ``tensorrt`` (GPU), ``torch`` (the
  tools.export.torch_convert module; CPU, or CUDA in FP32/FP16);
- :mod:`tools.engines.protocol`: warm-up, repeats, interleaved rounds for comparisons, median /
  min / bootstrap 95 % interval of each time and ratio, busy warning (docs/measurement.md);
- the benches' measuring: :mod:`tools.engines.head_to_head` (nets against nets in interleaved
  rounds: ``make bench``, ``make df1seg``, ``make bench-paper``), :mod:`tools.engines.latency`
  (models over sizes on ONNX Runtime), :mod:`tools.engines.tensorrt_profile` (TensorRT engines
  and their per-layer profiles); each time a timing record (tools.report.timings).

Every timing in the package (the benches, ``caffe_time run``, the POP LUT and its validation)
goes through here.
"""
from .base import Engine, EngineError, PreparedRun
from .caffe import CaffeTimeEngine, CaffeTimeError, PycaffeEngine, run_caffe_time
from .machine import busy_cpu_report, busy_neighbour, describe_machine
from .nets import PreparedNet, prepare_net
from .onnxruntime import OnnxRuntimeEngine
from .opencv import OpenCVEngine
from .protocol import Protocol, Timing, compare, ratio_interval, summarize, time_one
from .tensorrt import TensorRTEngine
from .torch_engine import TorchEngine

ENGINES = {"caffe-time": CaffeTimeEngine, "pycaffe": PycaffeEngine, "opencv": OpenCVEngine,
           "onnxruntime": OnnxRuntimeEngine, "tensorrt": TensorRTEngine, "torch": TorchEngine}


def make_engine(name: str, threads: int = 1, **options) -> Engine:
    """The engine called `name`, checked to be usable here (EngineError says why not)."""
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r} (choices: {', '.join(ENGINES)})")
    engine = ENGINES[name](threads=threads, **options)
    engine.version()
    return engine


__all__ = ["ENGINES", "Engine", "EngineError", "PreparedRun", "PreparedNet", "prepare_net",
           "make_engine", "CaffeTimeEngine", "CaffeTimeError", "PycaffeEngine", "OpenCVEngine",
           "OnnxRuntimeEngine", "TensorRTEngine", "TorchEngine", "run_caffe_time", "busy_cpu_report", "busy_neighbour",
           "describe_machine", "Protocol", "Timing", "compare", "ratio_interval", "summarize",
           "time_one"]
