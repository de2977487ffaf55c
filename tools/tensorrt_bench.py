"""TensorRT latency through ONNX (TensorRT >= 9 has no Caffe parser): FP32 and FP16 engines,
per-layer times from the TensorRT profiler printed in the release's profile-log format (the
TensorRT 3 sample's "<layer padded to 40> <t>ms" lines closed by "Time over all layers"), and
end-to-end latency with CUDA events, batch 1.

    python -m tools.tensorrt_bench [MODEL.onnx ...] [--models df1seg,icnet]
        [--sizes 1024x2048,640x360] [--precisions fp32,fp16] [--warmup 20] [--iterations 200]
        [--out-dir bench]

ONNX files given on the command line are benchmarked as they are; `--models` exports the named
nets (BN merged, the `caffe time` form, random weights, as tools.ort_bench does). Writes per
net, size and precision `tensorrt_profiles/log_<name>_profile_<size>_<precision>_<gpu>.txt`
and the summary `tensorrt.json` (where `make tables` looks) in --out-dir: {"engine": "tensorrt", "tensorrt_version", "gpu", "batch": 1,
"warmup", "iterations", "results": [{"model", "name", "resolution", "input_hw", "run_hw",
"precision", "median_ms" (CUDA events around execute_async_v3), "min_ms",
"median_with_copies_ms" (host-to-device input and device-to-host outputs included), "fps",
"profile_total_ms" (sum of the profiler's per-layer means), "profile_log"}],
"models": {model: {"resolution": {"<H>x<W>": {"median_ms" (FP16 where measured), "fps",
"run_hw", "precision", "fp32_ms", "fp16_ms"}}}}} — "models" is what `make tables` reads.

Needs the `tensorrt` and `cuda-python` wheels and an NVIDIA GPU; both are imported lazily,
so this module (and its profile formatter) imports anywhere.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tools.common.atomic import atomic_write_text

NAME_COLUMNS = 40  # the release's sample pads and cuts layer names to 40 columns


class TensorRTUnavailable(RuntimeError):
    """No TensorRT Python package, no CUDA bindings, or no GPU; the message says which."""


class TensorRTBuildError(RuntimeError):
    """The ONNX parser or the engine builder refused the model; carries TensorRT's errors."""


# ----------------------------------------------------------------------------- profile log


def format_profile(net: str, inputs: list[str], outputs: list[str],
                   layer_ms: list[tuple[str, float]], note: str | None = None) -> str:
    """A per-layer profile in the release's log format, ending with "Time over all layers"."""
    lines = [f"Building and running a GPU inference engine for {net}"]
    if note:
        lines.append(note)
    lines.append("Bindings after deserializing:")
    for i, name in enumerate(inputs):
        lines.append(f"Binding {i} ({name}): Input.")
    for i, name in enumerate(outputs, start=len(inputs)):
        lines.append(f"Binding {i} ({name}): Output.")
    for name, ms in layer_ms:
        lines.append(f"{name[:NAME_COLUMNS]:<{NAME_COLUMNS}} {ms:.3f}ms")
    lines.append(f"Time over all layers: {sum(ms for _, ms in layer_ms):.3f}ms")
    lines.append("Done.")
    return "\n".join(lines) + "\n"


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


# ----------------------------------------------------------------------------- CUDA / TensorRT


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


def run_engine(engine, feeds: dict[str, np.ndarray], warmup: int, iterations: int,
               profile_iterations: int | None = None, cuda: Cuda | None = None) -> EngineRun:
    """Time `engine` on `feeds` with CUDA events, then profile it layer by layer."""
    trt = _import_tensorrt()
    cuda = cuda or Cuda()
    rt = cuda.rt
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    host, device = {}, {}
    try:
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
        for name in inputs:
            cuda.to_device(device[name], host[name])
        stream = cuda.call(rt.cudaStreamCreate)
        start, stop = cuda.call(rt.cudaEventCreate), cuda.call(rt.cudaEventCreate)

        def enqueue():
            if not context.execute_async_v3(int(stream)):
                raise RuntimeError("execute_async_v3 failed")

        for _ in range(warmup):
            enqueue()
        cuda.call(rt.cudaStreamSynchronize, stream)
        compute, with_copies = [], []
        for _ in range(iterations):
            cuda.call(rt.cudaEventRecord, start, stream)
            enqueue()
            cuda.call(rt.cudaEventRecord, stop, stream)
            cuda.call(rt.cudaEventSynchronize, stop)
            compute.append(float(cuda.call(rt.cudaEventElapsedTime, start, stop)))
        for _ in range(iterations):
            cuda.call(rt.cudaEventRecord, start, stream)
            for name in inputs:
                cuda.call(rt.cudaMemcpyAsync, device[name], host[name].ctypes.data,
                          host[name].nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
            enqueue()
            for name in outputs:
                cuda.call(rt.cudaMemcpyAsync, host[name].ctypes.data, device[name],
                          host[name].nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)
            cuda.call(rt.cudaEventRecord, stop, stream)
            cuda.call(rt.cudaEventSynchronize, stop)
            with_copies.append(float(cuda.call(rt.cudaEventElapsedTime, start, stop)))

        times = LayerTimes()

        class Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name, ms):
                times.add(layer_name, ms)

        profiler = Profiler()  # keep a Python reference: the context does not own it
        context.profiler = profiler
        for _ in range(profile_iterations or iterations):
            enqueue()
            cuda.call(rt.cudaStreamSynchronize, stream)
        for name in outputs:
            cuda.to_host(host[name], device[name])
        cuda.call(rt.cudaEventDestroy, start)
        cuda.call(rt.cudaEventDestroy, stop)
        cuda.call(rt.cudaStreamDestroy, stream)
    finally:
        for ptr in device.values():
            cuda.free(ptr)
    return EngineRun(inputs, outputs, statistics.median(compute), min(compute),
                     statistics.median(with_copies), times.means(),
                     {n: host[n].copy() for n in outputs})


# ----------------------------------------------------------------------------- CLI


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def bench(jobs, precisions, warmup, iterations, out_dir: Path) -> dict:
    """jobs: (display name, name, resolution label, asked hw, run hw, onnx model)."""
    import tensorrt as trt
    from tqdm import tqdm

    from tools.ort_bench import models_summary
    cuda = Cuda()
    gpu = cuda.device_name()
    report = {"engine": "tensorrt", "tensorrt_version": trt.__version__, "gpu": gpu,
              "batch": 1, "warmup": warmup, "iterations": iterations, "results": []}
    out_dir.mkdir(parents=True, exist_ok=True)
    for display, name, label, hw, run_hw, model, precision in tqdm(
            [(*job, p) for job in jobs for p in precisions], desc="tensorrt", unit="engine"):
        _runtime, engine = build_engine(model, precision)
        feeds = {i.name: np.random.default_rng(0).normal(size=[d.dim_value for d in
                                                                 i.type.tensor_type.shape.dim]
                                                         ).astype(np.float32)
                 for i in model.graph.input}
        result = run_engine(engine, feeds, warmup, iterations, cuda=cuda)
        log_name = f"tensorrt_profiles/log_{name}_profile_{label}_{precision}_{_slug(gpu)}.txt"
        (out_dir / log_name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / log_name, format_profile(
            f"{name} ({label}, {precision}, TensorRT {trt.__version__}, {gpu})",
            result.inputs, result.outputs, result.layer_ms))
        report["results"].append({
            "model": display, "name": name, "resolution": label, "input_hw": list(hw),
            "run_hw": list(run_hw), "precision": precision,
            "median_ms": round(result.median_ms, 4), "min_ms": round(result.min_ms, 4),
            "median_with_copies_ms": round(result.median_with_copies_ms, 4),
            "fps": round(1000.0 / result.median_ms, 2),
            "profile_total_ms": round(sum(ms for _, ms in result.layer_ms), 4),
            "profile_log": log_name,
        })
        # `make tables` shows FP16 where measured: the release's engines requested half2 mode
        report["models"] = models_summary(report["results"], prefer="fp16")
        atomic_write_text(out_dir / "tensorrt.json", json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    import onnx

    from tools.caffe_net import CaffeNetError
    from tools.ort_bench import MODELS, SIZES, BenchError, check_model_name, model_net, parse_size
    from tools.to_onnx import convert
    ap = argparse.ArgumentParser(prog="python -m tools.tensorrt_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("onnx", nargs="*", type=Path, help="ONNX models to benchmark as they are")
    ap.add_argument("--models", help=f"named nets to export (e.g. {','.join(MODELS)}); default: "
                    f"all when no ONNX file is given")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out-dir", type=Path, default=Path("bench"))
    args = ap.parse_args(argv)
    try:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        if not precisions or set(precisions) - {"fp32", "fp16"}:
            raise BenchError(f"--precisions takes fp32 and/or fp16, got {args.precisions!r}")
        if args.warmup < 0 or args.iterations < 1:
            raise BenchError("--warmup must be >= 0 and --iterations >= 1")
        _import_tensorrt()
        Cuda()
        jobs = []
        for path in args.onnx:
            try:
                model = onnx.load(path)
            except Exception as err:  # noqa: BLE001 - onnx raises several types
                raise BenchError(f"{path}: not a readable ONNX model ({err})") from None
            dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
            hw = tuple(dims[2:4])
            jobs.append((path.stem, path.stem, f"{hw[0]}x{hw[1]}", hw, hw, model))
        names = args.models.split(",") if args.models else ([] if args.onnx else list(MODELS))
        sizes = [parse_size(s.strip()) for s in args.sizes.split(",") if s.strip()]
        for name in names:
            check_model_name(name.strip())
        for name in names:
            for label, hw in sizes:
                display, param, run_hw = model_net(name.strip(), hw)
                jobs.append((display, name.strip(), label, hw, run_hw, convert(param, None)))
        report = bench(jobs, precisions, args.warmup, args.iterations, args.out_dir)
    except (TensorRTUnavailable, TensorRTBuildError, BenchError, CaffeNetError) as err:
        print(f"tensorrt_bench: error: {err}", file=sys.stderr)
        return 2
    for r in report["results"]:
        print(f"{r['model']:<14} {r['resolution']:>10} {r['precision']}  "
              f"{r['median_ms']:8.3f} ms  {r['fps']:8.1f} FPS  (layers {r['profile_total_ms']:.3f} ms,"
              f" with copies {r['median_with_copies_ms']:.3f} ms)")
    print(f"{report['gpu']}, TensorRT {report['tensorrt_version']}; random weights; "
          f"wrote {args.out_dir}/tensorrt.json and the profile logs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
