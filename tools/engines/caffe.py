"""Caffe, two ways: the real ``caffe time`` binary, as the paper timed (its "Average Forward
pass" and per-layer averages), and pycaffe's ``Net.forward`` timed by the protocol's clock.

Both run on the CPU unless given a GPU (``gpu=N``, default from ``$DFSEG_CAFFE_DEVICE``, see
tools.runtime.caffe.caffe_device), which needs the CUDA build (``make caffe-gpu``)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tqdm import tqdm

from tools.runtime.caffe import CaffeNotFound, caffe_binary, caffe_device, import_caffe
from dfseg.base.atomic import atomic_write_text
from tools.report.log_parsers import LogParseError, caffe_failure_reason, parse_caffe_time
from tools.export.pycaffe_net import load_net

from .base import Engine, EngineError, PreparedRun
from .machine import thread_env
from .nets import check_memory, prepare_net

__all__ = ["CaffeTimeEngine", "PycaffeEngine", "run_caffe_time", "CaffeTimeError", "set_caffe_mode"]


class CaffeTimeError(EngineError):
    """`caffe time` could not run the net; the message says why."""


def run_caffe_time(model: Path, iterations: int, phase: str = "TRAIN", threads: int | None = None,
                   log_path: Path | None = None, progress: bool = True, label: str | None = None,
                   gpu: int | None = None) -> dict:
    """Run ``caffe time`` on the prototxt `model`; the parsed log (tools.report.log_parsers) plus
    "net" and "phase".  `threads` pins OpenBLAS (None: whatever the environment says);
    `gpu` runs it on that GPU (``-gpu N``; None: the CPU)."""
    try:
        binary = caffe_binary()
    except CaffeNotFound as err:
        raise CaffeTimeError(str(err)) from None
    # Caffe's INFO log carries the figures: make sure it is on, whatever the caller set.
    # glog >= 0.6 puts the year in each line's prefix; ask for the classic "I0308 ..." prefix
    # of the authors' logs (and of log parsers written for them).
    env = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1", GLOG_log_year_in_prefix="false")
    if threads is not None:
        env.update(thread_env(threads))
    cmd = [str(binary), "time", f"-model={model}", f"-iterations={iterations}", f"-phase={phase}"]
    if gpu is not None:
        cmd.append(f"-gpu={gpu}")
    lines: list[str] = []
    bar = tqdm(total=iterations, desc=f"caffe time {label or Path(model).name}", unit="it",
               disable=not progress, file=sys.stderr, leave=False)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", env=env) as proc:
        for line in proc.stdout:
            lines.append(line)
            if "forward-backward time" in line and "Iteration:" in line:
                bar.update(1)
    bar.close()
    text = "".join(lines)
    if log_path is not None:
        atomic_write_text(log_path, text)
    if proc.returncode != 0:
        why = caffe_failure_reason(lines)
        if proc.returncode == -9:   # SIGKILL leaves no last word in the log
            why = "killed by signal 9 (SIGKILL: most likely out of memory)"
        raise CaffeTimeError(f"caffe time failed on {label or model} (exit {proc.returncode}): {why}")
    try:
        result = parse_caffe_time(text, str(label or model))
    except LogParseError as err:
        raise CaffeTimeError(str(err)) from None
    result.update(net=str(label or model), phase=phase, device="cpu" if gpu is None else f"gpu:{gpu}")
    return result


class _CaffeTimeRun(PreparedRun):
    def __init__(self, engine: "CaffeTimeEngine", net):
        self.engine, self.name = engine, net.name
        self._dir = tempfile.TemporaryDirectory(prefix="dfseg_caffe_time_")
        self.model = Path(self._dir.name) / "net.prototxt"
        self.model.write_text(text_format.MessageToString(net.param))
        self.last: dict | None = None   # the parsed log of the latest run (per-layer figures)

    def timed(self, n: int) -> list[float]:
        """n iterations in one ``caffe time`` (which warms up itself): one sample, the average."""
        e = self.engine
        self.last = run_caffe_time(self.model, n, e.phase, e.threads, e.log_path, e.progress, self.name,
                                   e.gpu)
        return [float(self.last["forward_ms"])]

    def __call__(self) -> None:
        self.timed(1)

    def close(self) -> None:
        self._dir.cleanup()


class CaffeTimeEngine(Engine):
    """``caffe time -phase=TRAIN`` (the release log's "NetState phase (0)") by default."""

    name = "caffe-time"
    clock = "caffe time"

    def __init__(self, threads: int = 1, phase: str = "TRAIN", log_path: Path | None = None,
                 progress: bool = False, gpu: int | None = None):
        super().__init__(threads)
        self.phase, self.log_path, self.progress = phase, log_path, progress
        self.gpu = _device(gpu)

    def describe(self) -> dict:
        return {**super().describe(), "device": _device_name(self.gpu)}

    def version(self) -> str:
        try:
            binary = caffe_binary()
        except CaffeNotFound as err:
            raise EngineError(str(err)) from None
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        text = (out.stdout + out.stderr).strip()
        return text.splitlines()[-1] if text else "caffe"

    def prepare(self, net) -> PreparedRun:
        net = prepare_net(net)
        if self.gpu is None:   # host memory; a GPU has its own
            check_memory(net, self.name)
        return _CaffeTimeRun(self, net)


def _device(gpu: int | None) -> int | None:
    if gpu is not None:
        return gpu
    try:
        return caffe_device()
    except CaffeNotFound as err:
        raise EngineError(str(err)) from None


def _device_name(gpu: int | None) -> str:
    return "cpu" if gpu is None else f"gpu:{gpu}"


def set_caffe_mode(caffe, gpu: int | None) -> None:
    """Caffe's mode is one per thread, read at each forward: set it before every pass, so a
    CPU run and a GPU run can live side by side."""
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(gpu)
        caffe.set_mode_gpu()


class _PycaffeRun(PreparedRun):
    def __init__(self, caffe, net, gpu: int | None = None):
        self.caffe, self.gpu = caffe, gpu
        set_caffe_mode(caffe, gpu)
        try:
            self.net = load_net(caffe, net.param, "TEST")
        except Exception as err:   # pycaffe raises whatever Caffe's CHECKs turned into
            raise EngineError(f"pycaffe cannot load net {net.name!r}: {err}") from None
        for layer, blobs in net.weights.items():
            if layer in self.net.params:
                for target, value in zip(self.net.params[layer], blobs):
                    target.data[...] = value.reshape(target.data.shape)
        self.net.blobs[net.input_name].data[...] = net.input

    def __call__(self) -> None:
        set_caffe_mode(self.caffe, self.gpu)
        self.net.forward()

    def outputs(self) -> dict[str, np.ndarray]:
        set_caffe_mode(self.caffe, self.gpu)
        out = self.net.forward()
        return {name: np.array(value) for name, value in out.items()}


class PycaffeEngine(Engine):
    name = "pycaffe"

    def __init__(self, threads: int = 1, gpu: int | None = None):
        super().__init__(threads)
        self.gpu = _device(gpu)

    def describe(self) -> dict:
        return {**super().describe(), "device": _device_name(self.gpu)}

    def _caffe(self):
        # BLAS reads its thread count when the library loads: set it before pycaffe imports
        if "caffe" not in sys.modules:
            os.environ.update(thread_env(self.threads))
        try:
            caffe = import_caffe()
        except CaffeNotFound as err:
            raise EngineError(f"engine pycaffe: {err}") from None
        return caffe

    def version(self) -> str:
        return f"caffe {getattr(self._caffe(), '__version__', 'unknown')}"

    def prepare(self, net) -> PreparedRun:
        net = prepare_net(net)
        if self.gpu is None:   # host memory; a GPU has its own
            check_memory(net, self.name)
        return _PycaffeRun(self._caffe(), net, self.gpu)
