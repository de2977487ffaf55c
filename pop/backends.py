"""Latency backends of the POP look-up table: a LUT entry's tiny Input-fed net, or a whole
network for validation, timed on a real engine of the engine layer (tools.engines).

    backend.name, backend.platform() -> dict
    backend.time_net(net: NetParameter) -> float     # ms of one forward pass (batch 1)
    backend.profile_key(key: LutKey) -> float        # builds the block/stem/head net and times it

Backends (the names a LUT records): ``caffe`` (pycaffe, the Caffe built by ``make caffe``),
``caffe-time`` (the ``caffe time`` binary, as the authors measured), ``opencv``, ``onnxruntime``,
``torch`` (PyTorch on the CPU, the tools.to_torch module) and ``tensorrt`` (needs a GPU).  Nets
use the merged-BN forms (what a deployment engine runs).

The model of latency (docs/measurement.md, "LUT"): a net's latency is the sum of its parts'
(stem, blocks, head) minus the engine's fixed per-call cost counted once per extra part; each
part and each whole net is timed the same way -- warm-up, then N passes split into interleaved
rounds (the nets measured together take turns, so a change of the machine's load hits them
alike), the caches flushed before every pass (inside a whole network a block's weights arrive
from memory, evicted by the layers before it), the fastest pass of each round, the median over
rounds; on process CPU time for one thread (other processes' preemption does not count).
"""
from __future__ import annotations

import numpy as np

from contextlib import ExitStack
from typing import Callable, Mapping

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import block_net, head_net, stem_net
from tools.engines import EngineError, Protocol, compare, make_engine
from dfseg.base.errors import InputError

from .lut import LutKey, this_platform

__all__ = ["BACKENDS", "Backend", "BackendError", "key_net", "make_backend", "current_platform_of"]


class BackendError(InputError, RuntimeError):
    pass


#: LUT backend name -> engine of tools.engines
BACKENDS = {"caffe": "pycaffe", "caffe-time": "caffe-time", "opencv": "opencv",
            "onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "torch": "torch"}
FLUSH_BYTES = 64 * 1024 * 1024   # larger than any last-level cache of the machines we time on


def key_net(key: LutKey) -> caffe_pb2.NetParameter:
    if key.kind == "stem":
        return stem_net((key.h_in, key.w_in))
    if key.kind == "head":
        return head_net(key.c_in, (key.h_in, key.w_in), key.c_out)
    return block_net(key.block, key.c_in, (key.h_in, key.w_in), key.stride, key.projection)


class CacheFlush:
    """Stream through FLUSH_BYTES before a timed pass (outside the clock)."""

    _scratch: np.ndarray | None = None

    def __call__(self) -> None:
        if CacheFlush._scratch is None:
            CacheFlush._scratch = np.zeros(FLUSH_BYTES // 8)
        CacheFlush._scratch += 1.0


class Backend:
    """One engine, one protocol: every LUT part and every whole net is timed alike."""

    def __init__(self, name: str, threads: int = 1, iterations: int = 20, warmup: int = 3,
                 rounds: int = 5):
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r} (choices: {', '.join(BACKENDS)})")
        try:
            self.engine = make_engine(BACKENDS[name], threads=threads)
        except EngineError as err:
            raise BackendError(f"backend {name}: {err}") from None
        self.name, self.threads, self.iterations = name, threads, iterations
        # one thread: process CPU time (preemption by other jobs does not count); more
        # threads: wall-clock, the only clock that sees them all
        self.protocol = Protocol.splitting(iterations, rounds, warmup=warmup,
                                           clock="process_time" if threads == 1 else "perf_counter")
        self.flush = CacheFlush()

    @property
    def timing(self) -> str:
        if self.engine.clock != "protocol":
            return self.engine.clock
        return "cpu-time" if self.threads == 1 else "wall-clock"

    def engine_version(self) -> str:
        try:
            return self.engine.version()
        except EngineError as err:
            raise BackendError(str(err)) from None

    def platform(self) -> dict:
        p = this_platform(self.name, self.engine_version(), self.threads)
        p["timing"] = self.timing
        if self.name == "tensorrt":
            p["cpu"] = self.engine.describe().get("gpu", p["cpu"])  # the device that runs the nets
        return p

    def time_nets(self, nets: Mapping[str, caffe_pb2.NetParameter],
                  progress: Callable[[str], None] | None = None) -> dict[str, float]:
        """{name: ms} of nets timed together in interleaved rounds: the median over rounds of
        each round's fastest pass (other processes only ever add time, so a round's minimum is
        its most reproducible figure; the median over rounds discards rounds hit by a burst)."""
        try:
            with ExitStack() as stack:
                runs = {name: stack.enter_context(self.engine.prepare(net)) for name, net in nets.items()}
                result = compare(runs, self.protocol, progress, before_each=self.flush,
                                 round_statistic="min")
        except EngineError as err:
            raise BackendError(str(err)) from None
        return {name: float(np.median(v)) for name, v in result["round_medians_ms"].items()}

    def time_net(self, net: caffe_pb2.NetParameter) -> float:
        return self.time_nets({"net": net})["net"]

    def call_overhead(self) -> float:
        """Time of a trivial net (Input -> ReLU on one value): the engine's fixed cost per call."""
        net = caffe_pb2.NetParameter(name="call overhead")
        inp = net.layer.add(name="input", type="Input", top=["data"])
        inp.input_param.shape.add(dim=[1, 1, 1, 1])
        net.layer.add(name="relu", type="ReLU", bottom=["data"], top=["out"])
        return self.time_net(net)

    def profile_key(self, key: LutKey) -> float:
        return self.time_net(key_net(key))

    def profile_keys(self, keys: list[LutKey]) -> dict[LutKey, float]:
        """Several LUT entries timed together (interleaved rounds)."""
        times = self.time_nets({str(k): key_net(k) for k in keys})
        return {k: times[str(k)] for k in keys}


def make_backend(name: str, threads: int = 1, iterations: int = 20) -> Backend:
    return Backend(name, threads=threads, iterations=iterations)


def current_platform_of(recorded: dict) -> dict:
    """This machine described like `recorded` (same backend and threads): what a LUT must
    match to be used here."""
    backend = recorded.get("backend", "?")
    try:
        return make_backend(backend, threads=int(recorded.get("threads", 1))).platform()
    except BackendError:
        return this_platform(backend, "unavailable", int(recorded.get("threads", 1)))
