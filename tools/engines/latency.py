"""Latency of named models over sizes on one engine: the measuring of ``make bench-ort``
(ONNX Runtime, CPU) and the nets ``make bench-tensorrt`` exports.

Every net is the merged-BN form ``caffe time`` runs (tools.models.registry.timing_net) with the
engine layer's random weights -- latency does not depend on weight values -- at the smallest
size >= the asked one it accepts.  Each time is a timing record (tools.report.timings).
"""
from __future__ import annotations

from typing import Callable

from tqdm import tqdm

from dfseg.base.sizes import format_hxw
from tools.models.registry import ICNET, display_name, segmentation_models, timing_net
from tools.report.paper import TABLE4_SIZES
from tools.report.timings import models_view, timing_record

from .machine import describe_machine
from .nets import prepare_net
from .onnxruntime import OnnxRuntimeEngine, export_onnx
from .protocol import Protocol, time_one

__all__ = ["DEFAULT_SIZES", "PAPER_NAMES", "RANDOM_WEIGHTS_NOTE", "check_model_names", "default_models",
           "export_jobs", "onnxruntime_latency"]

#: Table 4's sizes as HxW, with the paper's WxH names
PAPER_NAMES = {hw: name for name, hw in TABLE4_SIZES.items()}
DEFAULT_SIZES = [*PAPER_NAMES, (1024, 2048)]
RANDOM_WEIGHTS_NOTE = "random (seeded, tools.export.caffemodel.random_weights); latency does not depend on weight values"


def default_models() -> list[str]:
    return [*segmentation_models(), ICNET]


def check_model_names(names: list[str]) -> None:
    """RegistryError for the first unknown name: before anything is measured."""
    for name in names:
        display_name(name)


def _ort_header(info: dict, warmup: int, repeats: int, threads: int, protocol: Protocol) -> dict:
    return {
        "engine": "onnxruntime", "onnxruntime_version": info["version"].split()[-1],
        "provider": "CPUExecutionProvider",
        "host": {"cpu": info["cpu"], "logical_cpus": info["logical_cpus"], "platform": info["platform"]},
        "threads": {"intra_op": threads, "inter_op": 1},
        "weights": RANDOM_WEIGHTS_NOTE, "batch": 1, "warmup": warmup, "repeats": repeats,
        "protocol": {"warmup": warmup, "repeats": repeats, "clock": protocol.clock,
                     "threads": threads, "machine": describe_machine()},
        "results": [],
    }


def onnxruntime_latency(models: list[str], sizes: list[tuple[int, int]], warmup: int, repeats: int,
                        threads: int, on_update: Callable[[dict], None], progress: bool = True) -> dict:
    """Every model at every size on ONNX Runtime (CPU): `warmup` untimed runs, then `repeats`
    timed ones.  `on_update(report)` gets the report after every net (to write it: an
    interrupted run keeps what it measured); returns the report."""
    engine = OnnxRuntimeEngine(threads=threads)
    protocol = Protocol(warmup=warmup, repeats=repeats, rounds=1)
    report = _ort_header(engine.describe(), warmup, repeats, threads, protocol)
    setting = {k: v for k, v in report["protocol"].items() if k != "machine"}
    for name, hw in tqdm([(m, s) for m in models for s in sizes], desc="onnxruntime", unit="net",
                         disable=not progress):
        param, run_hw = timing_net(name, hw)
        with engine.prepare(param) as run:
            timing = time_one(run, protocol)
        report["results"].append({
            "model": display_name(name), "name": name, "resolution": format_hxw(hw),
            "paper_resolution": PAPER_NAMES.get(tuple(hw)), "input_hw": list(hw), "run_hw": list(run_hw),
            **timing_record(timing, setting, "onnxruntime", report["protocol"]["machine"], digits=3),
            "max_ms": round(max(timing.samples_ms), 3), "busy": timing.busy,
            "fps": round(1000.0 / timing.median_ms, 2),
            "times_ms": [round(v, 3) for v in timing.samples_ms],
        })
        report["models"] = models_view(report["results"])
        on_update(report)
    return report


def export_jobs(names: list[str], sizes: list[tuple[int, int]]) -> list[tuple]:
    """(paper name, name, "HxW" asked, asked hw, run hw, ONNX model) of every named model at
    every size: the nets exported for TensorRT (BN merged, random weights)."""
    jobs = []
    for name in names:
        for hw in sizes:
            param, run_hw = timing_net(name, hw)
            jobs.append((display_name(name), name, format_hxw(hw), hw, run_hw,
                         export_onnx(prepare_net(param))))
    return jobs
