"""TensorRT through the ONNX export (TensorRT >= 9 has no Caffe parser): FP32 / FP16 engines,
end-to-end latency with CUDA events, per-layer times from TensorRT's profiler.

Needs an NVIDIA GPU, the ``tensorrt`` and ``cuda-python`` wheels (``pip install -e '.[tensorrt]'``);
both are imported lazily so this module imports anywhere.  Untested on the project's CPU
machines (no GPU); see docs/gpu.md.
"""
from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from dfseg.base.errors import InputError

from .base import Engine, EngineError, PreparedRun
from .nets import prepare_net
from .onnxruntime import export_onnx


class TensorRTUnavailable(InputError, RuntimeError):
    """No TensorRT Python package, no CUDA bindings, or no GPU; the message says which."""


class TensorRTBuildError(InputError, RuntimeError):
    """The ONNX parser or the engine builder refused the model; carries TensorRT's errors."""



class LayerTimes:
    """Accumulates the profiler's per-layer reports over iterations, in execution order."""

    def __init__(self):
        self.total = defaultdict(float)
        self.count = defaultdict(int)
        self.order: list[str] = []

    def add(self, name: str, ms: float) -> None:
        if name not in self.total:
            self.order.append(name)
        self.total[name] += ms
        self.count[name] += 1

    def means(self) -> list[tuple[str, float]]:
        return [(name, self.total[name] / self.count[name]) for name in self.order]



def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as err:
        raise TensorRTUnavailable(f"the tensorrt Python package is not installed ({err}); "
                                  f"pip install tensorrt on a machine with an NVIDIA GPU") from None
    major = int(trt.__version__.split(".")[0])
    if major < 9:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} is too old: the name-based "
                                  f"tensor API (execute_async_v3) of TensorRT >= 9 is needed")
    return trt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as err:
            raise TensorRTUnavailable(f"cuda-python is not installed ({err}); "
                                      f"pip install cuda-python") from None
    return cudart


class Cuda:
    """The few CUDA runtime calls the benchmark needs, with errors turned into exceptions."""

    def __init__(self):
        self.rt = _import_cudart()
        err, count = self.rt.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            raise TensorRTUnavailable(f"no CUDA GPU visible (cudaGetDeviceCount: {err}, {count})")

    def call(self, fn, *args):
        result = fn(*args)
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise RuntimeError(f"{fn.__name__} failed: {err}")
        return rest[0] if len(rest) == 1 else rest

    def device_name(self) -> str:
        props = self.call(self.rt.cudaGetDeviceProperties, 0)
        name = props.name
        return (name.decode() if isinstance(name, bytes) else str(name)).split("\x00")[0].strip()

    def malloc(self, nbytes: int) -> int:
        return int(self.call(self.rt.cudaMalloc, nbytes))

    def free(self, ptr: int) -> None:
        self.call(self.rt.cudaFree, ptr)

    def to_device(self, ptr: int, array: np.ndarray) -> None:
        self.call(self.rt.cudaMemcpy, ptr, array.ctypes.data, array.nbytes,
                  self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice)

    def to_host(self, array: np.ndarray, ptr: int) -> None:
        self.call(self.rt.cudaMemcpy, array.ctypes.data, ptr, array.nbytes,
                  self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost)


def _onnx_for_tensorrt(model):
    """TensorRT's ONNX parser rejects ArgMax's select_last_index=1 (which the exporter sets to
    reproduce Caffe's tie-breaking); ties do not change latency, so drop it."""
    import onnx
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        if node.op_type in ("ArgMax", "ArgMin"):
            for attr in node.attribute:
                if attr.name == "select_last_index":
                    attr.i = 0
    return model


def fp16_model(model):
    """The model computing in float16 end to end (weights, inputs, outputs, casts), for
    TensorRT versions that only build strongly typed networks (no BuilderFlag.FP16)."""
    import onnx
    from onnx import TensorProto, numpy_helper
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name))
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
    return model


def build_engine(model, precision: str, workspace_gib: float = 4.0):
    """(TensorRT runtime, deserialized engine) for an onnx.ModelProto."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    strongly_typed = precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16")
    if strongly_typed:  # newer TensorRT: precision comes from the model's own types
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        model = fp16_model(model)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(_onnx_for_tensorrt(model).SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT's ONNX parser refused the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names in the profile
    if precision == "fp16" and not strongly_typed:
        if not getattr(builder, "platform_has_fast_fp16", True):
            print("tensorrt_bench: warning: this GPU has no fast FP16", file=sys.stderr)
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision != "fp32":
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT could not build a {precision} engine")
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(serialized)
    return runtime, engine


@dataclass
class EngineRun:
    inputs: list[str]
    outputs: list[str]
    median_ms: float
    min_ms: float
    median_with_copies_ms: float
    layer_ms: list[tuple[str, float]]
    output_arrays: dict[str, np.ndarray]
    samples_ms: list[float]


class _Stream:
    """A CUDA stream, the start/stop event pair that times work on it, and the execution
    context enqueued on it."""

    def __init__(self, cuda: Cuda, context):
        self.cuda, self.context = cuda, context
        self.stream = cuda.call(cuda.rt.cudaStreamCreate)
        self.start, self.stop = cuda.call(cuda.rt.cudaEventCreate), cuda.call(cuda.rt.cudaEventCreate)

    def enqueue(self) -> None:
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("execute_async_v3 failed")

    def synchronize(self) -> None:
        self.cuda.call(self.cuda.rt.cudaStreamSynchronize, self.stream)

    def timed(self, work) -> float:
        """ms between CUDA events recorded on the stream before and after `work()`."""
        rt = self.cuda.rt
        self.cuda.call(rt.cudaEventRecord, self.start, self.stream)
        work()
        self.cuda.call(rt.cudaEventRecord, self.stop, self.stream)
        self.cuda.call(rt.cudaEventSynchronize, self.stop)
        return float(self.cuda.call(rt.cudaEventElapsedTime, self.start, self.stop))

    def destroy(self) -> None:
        self.cuda.call(self.cuda.rt.cudaEventDestroy, self.start)
        self.cuda.call(self.cuda.rt.cudaEventDestroy, self.stop)
        self.cuda.call(self.cuda.rt.cudaStreamDestroy, self.stream)


def _bind_buffers(trt, engine, context, cuda: Cuda, feeds: dict[str, np.ndarray],
                  names: list[str], inputs: list[str], host: dict, device: dict) -> None:
    """A host array and a device buffer per I/O tensor, bound to the context; fills `host`
    and `device` as it goes, so the caller frees whatever was allocated when this fails."""
    for name in names:
        shape = tuple(engine.get_tensor_shape(name))
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        if name in inputs:
            array = np.ascontiguousarray(feeds[name], dtype=dtype)
            if array.shape != shape:
                raise ValueError(f"input {name!r}: engine wants {shape}, got {array.shape}")
        else:
            array = np.empty(shape, dtype=dtype)
        host[name] = array
        device[name] = cuda.malloc(max(array.nbytes, 1))
        context.set_tensor_address(name, device[name])


def _copies_around(s: _Stream, inputs: list[str], outputs: list[str], host: dict, device: dict):
    """One pass with its host-to-device input and device-to-host output copies, on the stream."""
    rt = s.cuda.rt

    def work():
        for name in inputs:
            s.cuda.call(rt.cudaMemcpyAsync, device[name], host[name].ctypes.data,
                        host[name].nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, s.stream)
        s.enqueue()
        for name in outputs:
            s.cuda.call(rt.cudaMemcpyAsync, host[name].ctypes.data, device[name],
                        host[name].nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, s.stream)
    return work


def _profile_layers(trt, s: _Stream, passes: int):
    """(per-layer times, the profiler) over `passes` synchronized passes.  The caller keeps
    the profiler referenced while the context lives: the context does not own it."""
    times = LayerTimes()

    class Profiler(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name, ms):
            times.add(layer_name, ms)

    profiler = Profiler()
    s.context.profiler = profiler
    for _ in range(passes):
        s.enqueue()
        s.synchronize()
    return times, profiler


def run_engine(engine, feeds: dict[str, np.ndarray], warmup: int, iterations: int,
               profile_iterations: int | None = None, cuda: Cuda | None = None) -> EngineRun:
    """Time `engine` on `feeds` with CUDA events, then profile it layer by layer."""
    trt = _import_tensorrt()
    cuda = cuda or Cuda()
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    host, device = {}, {}
    try:
        _bind_buffers(trt, engine, context, cuda, feeds, names, inputs, host, device)
        for name in inputs:
            cuda.to_device(device[name], host[name])
        s = _Stream(cuda, context)
        for _ in range(warmup):
            s.enqueue()
        s.synchronize()
        compute = [s.timed(s.enqueue) for _ in range(iterations)]
        with_copies_pass = _copies_around(s, inputs, outputs, host, device)
        with_copies = [s.timed(with_copies_pass) for _ in range(iterations)]
        times, profiler = _profile_layers(trt, s, profile_iterations or iterations)  # noqa: F841 (kept alive)
        for name in outputs:
            cuda.to_host(host[name], device[name])
        s.destroy()
    finally:
        for ptr in device.values():
            cuda.free(ptr)
    return EngineRun(inputs, outputs, statistics.median(compute), min(compute),
                     statistics.median(with_copies), times.means(),
                     {n: host[n].copy() for n in outputs}, compute)




class _TensorRTRun(PreparedRun):
    def __init__(self, net, precision: str):
        try:
            self.runtime, self.engine = build_engine(export_onnx(net), precision)
        except (TensorRTUnavailable, TensorRTBuildError) as err:
            raise EngineError(str(err)) from None
        self.feeds, self.cuda = {net.input_name: net.input}, Cuda()
        self.last: EngineRun | None = None

    def timed(self, n: int) -> list[float]:
        """n passes timed with CUDA events (after n // 10 + 1 warm-up passes): the samples."""
        self.last = run_engine(self.engine, self.feeds, warmup=n // 10 + 1, iterations=n,
                               profile_iterations=1, cuda=self.cuda)
        return list(self.last.samples_ms)

    def __call__(self) -> None:
        self.timed(1)

    def outputs(self) -> dict[str, np.ndarray]:
        self.timed(1)
        return dict(self.last.output_arrays)


class TensorRTEngine(Engine):
    name = "tensorrt"
    clock = "cuda-events"

    def __init__(self, threads: int = 1, precision: str = "fp16"):
        super().__init__(threads)
        if precision not in ("fp32", "fp16"):
            raise EngineError(f"engine tensorrt: precision fp32 or fp16, got {precision!r}")
        self.precision = precision

    def version(self) -> str:
        try:
            trt = _import_tensorrt()
            Cuda()
        except TensorRTUnavailable as err:
            raise EngineError(f"engine tensorrt: {err}") from None
        return f"tensorrt {trt.__version__}"

    def describe(self) -> dict:
        info = super().describe()
        info.update(precision=self.precision, gpu=Cuda().device_name())
        return info

    def prepare(self, net) -> PreparedRun:
        self.version()
        return _TensorRTRun(prepare_net(net), self.precision)
