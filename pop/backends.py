"""Latency backends: profile a Caffe ``NetParameter`` (a LUT entry's tiny Input-fed net, or a
whole network for validation) on a real engine.

One small interface::

    backend.name, backend.platform() -> dict
    backend.time_net(net: NetParameter) -> float     # ms of one forward pass (batch 1), fastest of N
    backend.profile_key(key: LutKey) -> float        # builds the block/stem/head net and times it

Engines: ``caffe`` (pycaffe, the Caffe built by ``make caffe``), ``caffe-time`` (the ``caffe
time`` binary, as the authors measured), ``opencv`` (OpenCV's DNN module reading the same
prototxt), ``onnxruntime`` (CPU, through ``tools.to_onnx``) and ``tensorrt`` (needs a GPU).
Nets use the merged-BN forms (what a deployment engine runs).
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from prototxt_gen import caffe_pb2
from prototxt_gen.analysis import phase_view

from .lut import LutKey, this_platform


class BackendError(RuntimeError):
    pass


BACKENDS = ("caffe", "caffe-time", "opencv", "onnxruntime", "tensorrt")


def key_net(key: LutKey) -> caffe_pb2.NetParameter:
    from prototxt_gen.generate import block_net, head_net, stem_net
    if key.kind == "stem":
        return stem_net((key.h_in, key.w_in))
    if key.kind == "head":
        return head_net(key.c_in, (key.h_in, key.w_in), key.c_out)
    return block_net(key.block, key.c_in, (key.h_in, key.w_in), key.stride, key.projection)


def input_shape(net: caffe_pb2.NetParameter) -> tuple[str, tuple[int, ...]]:
    for layer in net.layer:
        if layer.type == "Input":
            return layer.top[0], tuple(layer.input_param.shape[0].dim)
    raise BackendError(f"net {net.name!r} has no Input layer")


def test_phase(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """The TEST-phase layers (engines other than Caffe ignore include/exclude rules)."""
    return phase_view(net, "TEST")


def random_weights(net: caffe_pb2.NetParameter, seed: int = 0) -> caffe_pb2.NetParameter:
    """The same net with every learnable blob filled with small random numbers (engines that
    refuse weightless nets need them; latency does not depend on the values)."""
    rng = np.random.default_rng(seed)
    shapes: dict[str, tuple[int, int, int]] = {}
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)

    def blob(layer, dims):
        b = layer.blobs.add()
        b.shape.dim.extend(dims)
        b.data.extend(rng.normal(0, 0.01, int(np.prod(dims))).astype(np.float32).tolist())

    for layer in out.layer:
        t = layer.type
        if t == "Input":
            d = layer.input_param.shape[0].dim
            shapes[layer.top[0]] = (d[1], d[2], d[3])
            continue
        c, h, w = shapes[layer.bottom[0]]
        if t == "Convolution":
            p = layer.convolution_param
            k = p.kernel_size[0] if p.kernel_size else p.kernel_h
            s = p.stride[0] if p.stride else 1
            pad = p.pad[0] if p.pad else 0
            dil = p.dilation[0] if p.dilation else 1
            g = p.group or 1
            blob(layer, (p.num_output, c // g, k, k))
            if p.bias_term:
                blob(layer, (p.num_output,))
            ke = dil * (k - 1) + 1
            shapes[layer.top[0]] = (p.num_output, (h + 2 * pad - ke) // s + 1, (w + 2 * pad - ke) // s + 1)
        elif t == "InnerProduct":
            p = layer.inner_product_param
            blob(layer, (p.num_output, c * h * w))
            if p.bias_term:
                blob(layer, (p.num_output,))
            shapes[layer.top[0]] = (p.num_output, 1, 1)
        elif t == "Pooling":
            p = layer.pooling_param
            if p.global_pooling:
                shapes[layer.top[0]] = (c, 1, 1)
            else:
                kh = p.kernel_h or p.kernel_size
                kw = p.kernel_w or p.kernel_size
                sh = p.stride_h or p.stride or 1
                sw = p.stride_w or p.stride or 1
                ph, pw = p.pad_h or p.pad, p.pad_w or p.pad
                shapes[layer.top[0]] = (c, -(-(h + 2 * ph - kh) // sh) + 1, -(-(w + 2 * pw - kw) // sw) + 1)
        elif t == "BatchNorm":
            blob(layer, (c,)); blob(layer, (c,)); blob(layer, (1,))
            layer.blobs[0].data[:] = [0.0] * c
            layer.blobs[1].data[:] = [1.0] * c
            layer.blobs[2].data[:] = [1.0]
            shapes[layer.top[0]] = (c, h, w)
        elif t == "Scale":
            blob(layer, (c,))
            if layer.scale_param.bias_term:
                blob(layer, (c,))
            shapes[layer.top[0]] = (c, h, w)
        elif t == "Deconvolution":
            p = layer.convolution_param
            k = p.kernel_size[0] if p.kernel_size else p.kernel_h
            st = p.stride[0] if p.stride else 1
            pad = p.pad[0] if p.pad else 0
            g = p.group or 1
            blob(layer, (c, p.num_output // g, k, k))
            if p.bias_term:
                blob(layer, (p.num_output,))
            shapes[layer.top[0]] = (p.num_output, (h - 1) * st - 2 * pad + k, (w - 1) * st - 2 * pad + k)
        elif t == "Interp":
            p = layer.interp_param
            if p.height and p.width:
                shapes[layer.top[0]] = (c, p.height, p.width)
            elif p.zoom_factor:
                shapes[layer.top[0]] = (c, h + (h - 1) * (p.zoom_factor - 1), w + (w - 1) * (p.zoom_factor - 1))
            else:
                raise BackendError(f"layer {layer.name!r}: Interp without height/width or zoom_factor")
        elif t == "Concat":
            shapes[layer.top[0]] = (sum(shapes[b][0] for b in layer.bottom), h, w)
        elif t in ("ReLU", "Eltwise", "Softmax", "Dropout"):
            shapes[layer.top[0]] = (c, h, w)
        else:
            raise BackendError(f"layer {layer.name!r}: type {t} not supported for latency profiling")
    return out


class Backend:
    name = "?"

    def __init__(self, threads: int = 1, iterations: int = 20, warmup: int = 3):
        self.threads, self.iterations, self.warmup = threads, iterations, warmup

    def engine_version(self) -> str:
        raise NotImplementedError

    _scratch: np.ndarray | None = None

    def _evict_caches(self) -> None:
        """Stream through 64 MB before each timed pass.  Inside a whole network a block's
        weights and inputs come from DRAM (the layers before it evicted them); a block timed
        alone in a loop would find them in cache and look faster, and the LUT's sum would
        underestimate the network."""
        if Backend._scratch is None:
            Backend._scratch = np.zeros(8 * 1024 * 1024)
        Backend._scratch += 1.0

    def platform(self) -> dict:
        p = this_platform(self.name, self.engine_version(), self.threads)
        p["timing"] = self.timing
        return p

    @property
    def timing(self) -> str:
        return "cpu-time" if self.threads == 1 else "wall-clock"

    def time_net(self, net: caffe_pb2.NetParameter) -> float:
        raise NotImplementedError

    def call_overhead(self) -> float:
        """Time of a trivial net (Input -> ReLU on one value): the engine's fixed cost per call."""
        net = caffe_pb2.NetParameter(name="call overhead")
        inp = net.layer.add(name="input", type="Input", top=["data"])
        inp.input_param.shape.add(dim=[1, 1, 1, 1])
        net.layer.add(name="relu", type="ReLU", bottom=["data"], top=["out"])
        return self.time_net(net)

    def profile_key(self, key: LutKey) -> float:
        return self.time_net(key_net(key))

    def _clock(self):
        """Single-threaded engines are timed in process CPU time: on a shared machine other
        jobs preempt us, which inflates wall-clock time (more for longer nets, so the sum of
        short block timings and a whole net's timing would disagree) but not CPU time, which
        equals wall-clock time on an idle machine.  Multi-threaded runs need wall-clock time."""
        return time.process_time if self.threads == 1 else time.perf_counter

    def _fastest(self, run) -> float:
        clock = self._clock()
        for _ in range(self.warmup):
            run()
        times = []
        for _ in range(self.iterations):
            self._evict_caches()
            t = clock()
            run()
            times.append((clock() - t) * 1e3)
        # the fastest pass: on a shared machine other processes only ever add time, so the
        # minimum is the most reproducible estimate of the net's own cost
        return min(times)


class OpenCVBackend(Backend):
    name = "opencv"

    def engine_version(self) -> str:
        import cv2
        return f"opencv {cv2.__version__}"

    def time_net(self, net):
        import cv2
        from google.protobuf import text_format
        cv2.setNumThreads(self.threads)
        net = test_phase(net)
        _, shape = input_shape(net)
        with tempfile.TemporaryDirectory() as d:
            proto, model = Path(d) / "net.prototxt", Path(d) / "net.caffemodel"
            proto.write_text(text_format.MessageToString(net))
            model.write_bytes(random_weights(net).SerializeToString())
            try:
                dnn = cv2.dnn.readNetFromCaffe(str(proto), str(model))
            except cv2.error as e:
                raise BackendError(f"OpenCV cannot load net {net.name!r}: {str(e).splitlines()[-1]}")
        dnn.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

        def run():
            dnn.setInput(x)
            dnn.forward()
        try:
            return self._fastest(run)
        except cv2.error as e:
            msg = [l for l in str(e).splitlines() if l.strip()]
            raise BackendError(f"OpenCV cannot run net {net.name!r}: {msg[0] if msg else e}")


class CaffeBackend(Backend):
    """pycaffe: ``caffe.Net(prototxt, TEST)`` then timed ``forward()`` calls (CPU mode)."""

    name = "caffe"

    def _caffe(self):
        # BLAS reads its thread count when the library loads: set it before pycaffe imports
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(self.threads)
        try:
            from tools.caffe_locate import import_caffe
        except ImportError:
            raise BackendError("backend caffe: tools.caffe_locate is missing (Caffe not merged yet; run `make caffe`)")
        try:
            return import_caffe()
        except Exception as e:
            raise BackendError(f"backend caffe: cannot import pycaffe ({e}); build it with `make caffe`")

    def engine_version(self) -> str:
        caffe = self._caffe()
        return f"caffe {getattr(caffe, '__version__', 'unknown')}"

    def time_net(self, net):
        from google.protobuf import text_format
        caffe = self._caffe()
        caffe.set_mode_cpu()
        with tempfile.TemporaryDirectory() as d:
            proto = Path(d) / "net.prototxt"
            proto.write_text(text_format.MessageToString(net))
            cnet = caffe.Net(str(proto), caffe.TEST)
        name, shape = input_shape(net)
        cnet.blobs[name].data[...] = np.random.default_rng(0).standard_normal(shape)
        return self._fastest(cnet.forward)


class CaffeTimeBackend(Backend):
    """The ``caffe time`` binary: parses "Average Forward pass: X ms"."""

    name = "caffe-time"
    timing = "wall-clock"  # what `caffe time` reports

    def _binary(self) -> str:
        try:
            from tools.caffe_locate import caffe_binary
            return str(caffe_binary())
        except Exception:
            pass  # not merged yet or no binary there: look in the usual places
        for candidate in (os.environ.get("CAFFE_BIN"), "build/caffe/bin/caffe", "build/caffe/tools/caffe"):
            if candidate and Path(candidate).is_file():
                return candidate
        import shutil
        found = shutil.which("caffe")
        if not found:
            raise BackendError("backend caffe-time: no caffe binary (set CAFFE_BIN or run `make caffe`)")
        return found

    def engine_version(self) -> str:
        out = subprocess.run([self._binary(), "--version"], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().splitlines()[-1] if (out.stdout + out.stderr).strip() else "caffe"

    def time_net(self, net):
        from google.protobuf import text_format
        with tempfile.TemporaryDirectory() as d:
            proto = Path(d) / "net.prototxt"
            proto.write_text(text_format.MessageToString(net))
            env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), OPENBLAS_NUM_THREADS=str(self.threads),
                       MKL_NUM_THREADS=str(self.threads), GLOG_logtostderr="1",
                       GLOG_minloglevel="0")  # the timing is an INFO line (pycaffe may have muted it)
            out = subprocess.run([self._binary(), "time", f"-model={proto}", f"-iterations={self.iterations}"],
                                 capture_output=True, text=True, env=env)
        m = re.search(r"Average Forward pass:\s*([0-9.]+)\s*ms", out.stderr + out.stdout)
        if out.returncode != 0 or m is None:
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BackendError(f"caffe time failed on {net.name!r}: {tail[0]}")
        return float(m.group(1))


def _to_onnx(net: caffe_pb2.NetParameter):
    """The ONNX exporter of tools.to_onnx (``net_to_onnx`` or ``convert``), random weights."""
    try:
        from tools import to_onnx
    except ImportError:
        raise BackendError("tools.to_onnx is missing (the ONNX exporter is not merged)")
    export = getattr(to_onnx, "net_to_onnx", None) or getattr(to_onnx, "convert", None)
    if export is None:
        raise BackendError("tools.to_onnx has neither net_to_onnx nor convert")
    return export(test_phase(net))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def engine_version(self) -> str:
        try:
            import onnxruntime
        except ImportError:
            raise BackendError("backend onnxruntime: the onnxruntime package is not installed")
        return f"onnxruntime {onnxruntime.__version__}"

    def time_net(self, net):
        import onnxruntime as ort
        net = test_phase(net)
        model = _to_onnx(net)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        _, shape = input_shape(net)
        feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return self._fastest(lambda: sess.run(None, feed))


class TensorRTBackend(Backend):
    """TensorRT FP16 through the ONNX export, timed with CUDA events — the engine building and
    timing of ``tools.tensorrt_bench`` (needs an NVIDIA GPU, ``tensorrt`` and ``cuda-python``)."""

    name = "tensorrt"
    timing = "cuda-events"

    def engine_version(self) -> str:
        try:
            from tools.tensorrt_bench import _import_tensorrt
            trt = _import_tensorrt()
        except Exception as e:
            raise BackendError(f"backend tensorrt: needs an NVIDIA GPU and TensorRT ({e})")
        return f"tensorrt {trt.__version__}"

    def platform(self) -> dict:
        p = super().platform()
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True)
            p["cpu"] = out.stdout.strip().splitlines()[0]  # the device that runs the nets
        except (OSError, IndexError):
            raise BackendError("backend tensorrt: no NVIDIA GPU found (nvidia-smi)")
        return p

    def time_net(self, net):
        from tools.tensorrt_bench import build_engine, run_engine
        net = test_phase(net)
        name, shape = input_shape(net)
        try:
            _runtime, engine = build_engine(_to_onnx(net), "fp16")
            run = run_engine(engine, {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)},
                             warmup=self.warmup, iterations=self.iterations, profile_iterations=1)
        except Exception as e:
            raise BackendError(f"TensorRT failed on {net.name!r}: {e}")
        return run.min_ms


def make_backend(name: str, threads: int = 1, iterations: int = 20) -> Backend:
    classes = {"caffe": CaffeBackend, "caffe-time": CaffeTimeBackend, "opencv": OpenCVBackend,
               "onnxruntime": OnnxRuntimeBackend, "tensorrt": TensorRTBackend}
    if name not in classes:
        raise BackendError(f"unknown backend {name!r} (choices: {', '.join(BACKENDS)})")
    backend = classes[name](threads=threads, iterations=iterations)
    backend.engine_version()  # fail now, clearly, if the engine is missing
    return backend


def current_platform_of(recorded: dict) -> dict:
    """This machine described like `recorded` (same backend and threads): what a LUT must
    match to be used here."""
    backend = recorded.get("backend", "?")
    try:
        return make_backend(backend, threads=int(recorded.get("threads", 1))).platform()
    except BackendError:
        return this_platform(backend, "unavailable", int(recorded.get("threads", 1)))
