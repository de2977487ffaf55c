"""TensorRT latency over nets, sizes and precisions (``make bench-tensorrt``): per engine built
its per-layer profile in the release's profile-log format (the TensorRT 3 sample's "<layer
padded to 40> <t>ms" lines closed by "Time over all layers") and its end-to-end latency with
CUDA events, batch 1, as a timing record (tools.report.timings).

TensorRT and cuda-python are imported lazily (tools.engines.tensorrt), so this module and its
profile formatter import anywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from dfseg.base.atomic import atomic_write_text
from tools.report.timings import models_view, timing_record

from .machine import describe_machine
from .protocol import summarize
from .tensorrt import Cuda, _import_tensorrt, build_engine, run_engine

__all__ = ["NAME_COLUMNS", "format_profile", "tensorrt_latency"]

NAME_COLUMNS = 40  # the release's sample pads and cuts layer names to 40 columns
CLOCK = "CUDA events around execute_async_v3"


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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _feeds(model) -> dict[str, np.ndarray]:
    return {i.name: np.random.default_rng(0).normal(size=[d.dim_value for d in i.type.tensor_type.shape.dim]
                                                    ).astype(np.float32)
            for i in model.graph.input}


def tensorrt_latency(jobs, precisions, warmup: int, iterations: int, out_dir: Path,
                     on_update: Callable[[dict], None]) -> dict:
    """jobs: (display name, name, resolution label, asked hw, run hw, onnx model).  Writes each
    engine's profile log under `out_dir`/tensorrt_profiles; `on_update(report)` gets the
    report after every engine (to write it); returns the report."""
    import tensorrt as trt
    from tqdm import tqdm

    _import_tensorrt()
    cuda = Cuda()
    gpu = cuda.device_name()
    machine = {"gpu": gpu, **describe_machine()}
    protocol = {"warmup": warmup, "repeats": iterations, "rounds": 1, "clock": CLOCK}
    report = {"engine": "tensorrt", "tensorrt_version": trt.__version__, "gpu": gpu,
              "batch": 1, "warmup": warmup, "iterations": iterations, "results": []}
    for display, name, label, hw, run_hw, model, precision in tqdm(
            [(*job, p) for job in jobs for p in precisions], desc="tensorrt", unit="engine"):
        _runtime, engine = build_engine(model, precision)
        result = run_engine(engine, _feeds(model), warmup, iterations, cuda=cuda)
        log_name = f"tensorrt_profiles/log_{name}_profile_{label}_{precision}_{_slug(gpu)}.txt"
        (out_dir / log_name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / log_name, format_profile(
            f"{name} ({label}, {precision}, TensorRT {trt.__version__}, {gpu})",
            result.inputs, result.outputs, result.layer_ms))
        report["results"].append({
            "model": display, "name": name, "resolution": label, "input_hw": list(hw),
            "run_hw": list(run_hw), "precision": precision,
            **timing_record(summarize(result.samples_ms), protocol, f"tensorrt {precision}", machine, digits=4),
            "median_with_copies_ms": round(result.median_with_copies_ms, 4),
            "fps": round(1000.0 / result.median_ms, 2),
            "profile_total_ms": round(sum(ms for _, ms in result.layer_ms), 4),
            "profile_log": log_name,
        })
        # `make tables` shows FP16 where measured: the release's engines requested half2 mode
        report["models"] = models_view(report["results"], prefer="fp16")
        on_update(report)
    return report
