"""PyTorch running the net as tools.export.torch_convert writes it: the plain ``nn.Module``
`python -m tools.to_torch` ships, with the net's own (shared) random weights, in eval mode
under ``torch.inference_mode()``.

- CPU: intra-op threads pinned to the engine's threads, one inter-op thread; timed by the
  protocol's clock.
- CUDA (``device="cuda"`` or ``"cuda:N"``): cuDNN autotuning on (``cudnn.benchmark``), FP32 or
  FP16 (weights and input in half precision), every call synchronized; ``timed(n)`` times n
  passes with CUDA events after the warm-up (which is also when cuDNN picks its algorithms).

The module is named torch_engine, not torch: importing a sibling ``torch`` would bind the name
``torch`` in this package's namespace to it.
"""
from __future__ import annotations

import re

import numpy as np

from tools.export.caffe_net import CaffeNetError
from tools.export.torch_convert import convert, instantiate

from .base import Engine, EngineError, PreparedRun
from .machine import cpu_model
from .nets import check_memory, prepare_net
from .protocol import Protocol

__all__ = ["TorchEngine"]

PRECISIONS = {"fp32": "float32", "fp16": "float16"}
WARMUP = Protocol().warmup   # the protocol skips its warm-up for engines with their own clock


def _torch():
    """torch, imported when an engine is made (it takes a second): commands that load the
    engine layer without timing on torch do not pay for it."""
    try:
        import torch
    except ImportError as err:   # a declared dependency; a broken install costs this engine only
        raise EngineError(f"engine torch: torch is not importable ({err})") from None
    return torch


def _first_line(err) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _model(torch, net, device: str, dtype):
    """(the generated module of `net`, its Net on `device` in `dtype`, the input tensors)."""
    try:
        module = convert(net.caffe_net, net.weights, weights_source="random weights (shared)")
        _, model = instantiate(module, f"<{net.name}>")
    except (CaffeNetError, ValueError, RuntimeError) as err:
        raise EngineError(f"PyTorch export of {net.name!r}: {_first_line(err)}") from None
    if list(module.inputs) != [net.input_name]:
        raise EngineError(f"net {net.name!r}: the module takes {list(module.inputs)}, "
                          f"the engines feed {net.input_name!r}")
    try:
        model = model.to(device=device, dtype=dtype)
        inputs = [torch.from_numpy(np.ascontiguousarray(net.input)).to(device=device, dtype=dtype)]
    except RuntimeError as err:   # e.g. CUDA out of memory
        raise EngineError(f"torch cannot load {net.name!r} on {device}: {_first_line(err)}") from None
    return module, model, inputs


class _TorchRun(PreparedRun):
    def __init__(self, torch, net, device: str, dtype):
        self.torch, self.device, self.name = torch, device, net.name
        self.module, self.model, self.inputs = _model(torch, net, device, dtype)

    def _forward(self):
        try:
            with self.torch.inference_mode():
                out = self.model(*self.inputs)
                self._synchronize()
        except RuntimeError as err:
            raise EngineError(f"torch cannot run net {self.name!r}: {_first_line(err)}") from None
        return out if isinstance(out, tuple) else (out,)

    def _synchronize(self) -> None:
        """CPU work is done when the call returns."""

    def __call__(self) -> None:
        self._forward()

    def outputs(self) -> dict[str, np.ndarray]:
        arrays = [t.detach().float().cpu().numpy() for t in self._forward()]
        return dict(zip(self.module.outputs, arrays))

    def close(self) -> None:
        self.model = self.inputs = None


class _TorchCudaRun(_TorchRun):
    def __init__(self, torch, net, device: str, dtype):
        super().__init__(torch, net, device, dtype)
        for _ in range(WARMUP):   # cuDNN autotunes on the first passes: never on the clock
            self()

    def _synchronize(self) -> None:
        # a call returns when the GPU is done, as every engine's call does
        self.torch.cuda.synchronize(self.device)

    def timed(self, n: int) -> list[float]:
        """n passes, each between two CUDA events on the device's stream: the samples (ms)."""
        torch = self.torch
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(n)]
        try:
            with torch.cuda.device(self.device), torch.inference_mode():
                for start, stop in events:
                    start.record()
                    self.model(*self.inputs)
                    stop.record()
                torch.cuda.synchronize(self.device)
        except RuntimeError as err:
            raise EngineError(f"torch cannot run net {self.name!r}: {_first_line(err)}") from None
        return [float(start.elapsed_time(stop)) for start, stop in events]


def _device(device: str) -> str:
    if device == "cpu" or re.fullmatch(r"cuda(:\d+)?", str(device)):
        return device
    raise EngineError(f"engine torch: device cpu, cuda or cuda:N, got {device!r}")


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, threads: int = 1, device: str = "cpu", precision: str = "fp32"):
        super().__init__(threads)
        self.device = _device(device)
        if precision not in PRECISIONS:
            raise EngineError(f"engine torch: precision fp32 or fp16, got {precision!r}")
        if precision == "fp16" and self.device == "cpu":
            raise EngineError("engine torch: fp16 runs on CUDA only (device cpu asked)")
        self.precision = precision
        self.clock = "protocol" if self.device == "cpu" else "cuda-events"

    @property
    def cuda(self) -> bool:
        return self.device != "cpu"

    def version(self) -> str:
        torch = _torch()
        if self.cuda:
            self._check_cuda(torch)
            return f"torch {torch.__version__} (CUDA {torch.version.cuda})"
        return f"torch {torch.__version__}"

    def _check_cuda(self, torch) -> None:
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise EngineError(f"engine torch: no CUDA device: torch {torch.__version__} ({built}) "
                              f"sees no GPU")
        index = torch.device(self.device).index or 0
        if index >= torch.cuda.device_count():
            raise EngineError(f"engine torch: no CUDA device {self.device} "
                              f"({torch.cuda.device_count()} visible)")

    def describe(self) -> dict:
        torch = _torch()
        info = super().describe()
        info.update(device=self.device, precision=self.precision, torch=torch.__version__,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if self.cuda else None,
                    cudnn_benchmark=self.cuda,
                    # torch's default: FP32 convolutions may run in TF32 on Ampere and later
                    tf32=torch.backends.cudnn.allow_tf32 if self.cuda else None,
                    device_name=torch.cuda.get_device_name(self.device) if self.cuda else cpu_model())
        return info

    def _configure(self, torch) -> None:
        torch.set_num_threads(self.threads)   # process-wide: set again before each net
        try:   # settable once per process, before any inter-op work: later calls raise
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        if self.cuda:
            torch.backends.cudnn.benchmark = True

    def prepare(self, net) -> PreparedRun:
        torch = _torch()
        self.version()
        net = prepare_net(net)
        if not self.cuda:   # host memory; a GPU has its own
            check_memory(net, self.name)
        self._configure(torch)
        dtype = getattr(torch, PRECISIONS[self.precision])
        run = _TorchCudaRun if self.cuda else _TorchRun
        return run(torch, net, self.device, dtype)
