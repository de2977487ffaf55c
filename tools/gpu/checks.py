"""The GPU checks of ``make gpu-check``, one per process (tools.gpu.host starts each; a CUDA
error aborts Caffe, so it fails one check, not the run).  Each returns ``{"status": "pass" |
"fail" | "skip", "detail": one line, ...figures}``; :func:`run_check` runs one by name.  Needs an
NVIDIA GPU; the Caffe checks need ``$CAFFE_ROOT`` at the CUDA build (tools.gpu.host sets it).

``gpu = -1`` runs the same code with the CPU in the GPU's place (the "GPU" side then equals the
CPU side): how the tests exercise these checks on machines without a GPU.  The head-to-head
times are timing records (tools.report.timings).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from dfseg.base.sizes import format_hxw
from tools.engines import (CaffeTimeEngine, EngineError, OnnxRuntimeEngine, Protocol, PycaffeEngine,
                           TensorRTEngine, compare, describe_machine, prepare_net, ratio_interval)
from tools.engines.nets import scaled_difference
from tools.gpu.layers import GRADIENT_TOLERANCE, LAYER_TOLERANCE, cpu_vs_gpu, gradient_check
from tools.models.registry import ICNET, RegistryError, timing_net
from tools.report.timings import timing_record
from tools.runtime.caffe import CaffeNotFound, import_caffe

__all__ = ["CHILDREN", "CheckOptions", "Skip", "run_check"]

MODELS = ("df1seg", ICNET)
NET_TOLERANCE = 1e-4
TENSORRT_TOLERANCE = 1e-3


class Skip(Exception):
    """This check cannot run here; the message says why."""


def _nets(hw) -> tuple[dict, list[str]]:
    """The prepared timing nets of DF1-Seg and ICNet at `hw` (random weights, one input), and
    the models that could not be had (ICNet without its reference prototxt)."""
    nets, missing = {}, []
    for model in MODELS:
        try:
            nets[model] = prepare_net(timing_net(model, hw)[0])
        except RegistryError as err:
            missing.append(f"{model}: {err}")
    if not nets:
        raise Skip("; ".join(missing))
    return nets, missing


def _gpu_caffe():
    try:
        return import_caffe()
    except (CaffeNotFound, ImportError, OSError) as err:
        raise Skip(f"pycaffe of the CUDA build does not import here: {err}") from None


def _device(options) -> int | None:
    return options.gpu if options.gpu >= 0 else None


def run_layers(options) -> dict:
    rows = cpu_vs_gpu(_gpu_caffe(), _device(options))
    worst = max(max(r["max_diff"].values()) for r in rows)
    bad = [r["case"] for r in rows if not r["ok"]]
    return {"status": "fail" if bad else "pass", "rows": rows,
            "detail": f"{len(rows)} cases of CUDA vs CPU forward and backward, largest scaled "
                      f"difference {worst:.2g} (limit {LAYER_TOLERANCE:g})"
                      + (f"; over it: {', '.join(bad)}" if bad else "")}


def run_gradients(options) -> dict:
    rows = gradient_check(_gpu_caffe(), _device(options))
    bad = [r["case"] for r in rows if not r["ok"]]
    worst = max(r["max_abs_error"] for r in rows)
    return {"status": "fail" if bad else "pass", "rows": rows,
            "detail": f"{len(rows)} cases of CUDA backward vs central differences on the GPU, "
                      f"largest error {worst:.2g} (limit {GRADIENT_TOLERANCE:g})"
                      + (f"; over it: {', '.join(bad)}" if bad else "")}


def _agreement(reference, engine, nets: dict, tolerance: float) -> list[dict]:
    """Each net's outputs on `engine` against `reference`: the largest difference scaled by
    the reference's magnitude, and whether it is within `tolerance`."""
    rows = []
    for model, net in nets.items():
        with reference.prepare(net) as run:
            want = run.outputs()
        with engine.prepare(net) as run:
            got = run.outputs()
        diff = scaled_difference(got, want, reshape=True)
        rows.append({"model": model, "max_scaled_diff": diff, "ok": diff <= tolerance})
    return rows


def run_nets(options) -> dict:
    # the CPU reference on every core (the thread count is read when pycaffe loads)
    cpu = PycaffeEngine(threads=os.cpu_count() or 1, gpu=None)
    gpu = PycaffeEngine(gpu=_device(options))
    nets, missing = _nets(options.hw)
    rows = [dict(row, input=list(nets[row["model"]].input_shape))
            for row in _agreement(cpu, gpu, nets, NET_TOLERANCE)]
    bad = [r["model"] for r in rows if not r["ok"]]
    detail = ", ".join(f"{r['model']} {r['max_scaled_diff']:.2g}" for r in rows)
    return {"status": "fail" if bad else "pass", "rows": rows, "missing": missing,
            "detail": f"pycaffe CPU vs GPU forward, scaled difference {detail} (limit "
                      f"{NET_TOLERANCE:g})" + (f"; not run: {'; '.join(missing)}" if missing else "")}


def _head_to_head(engine, nets: dict, protocol: Protocol) -> dict:
    """DF1-Seg against ICNet on one engine, in interleaved rounds (docs/measurement.md): per
    net its FPS and timing record, and the FPS ratio with its 95 % interval."""
    runs = {model: engine.prepare(net) for model, net in nets.items()}
    try:
        result = compare(runs, protocol)
    finally:
        for run in runs.values():
            run.close()
    info = engine.describe()
    device = info.get("gpu") or info.get("device")
    machine = {"device": device, **describe_machine()}
    out = {"engine": engine.name, "device": device,
           "fps": {m: 1000.0 / t.median_ms for m, t in result["timings"].items()},
           "timings": {m: timing_record(t, {**asdict(protocol), "interleaved": True}, engine.name, machine)
                       for m, t in result["timings"].items()}}
    if len(runs) == 2:   # time ratio icnet / df1seg per round = FPS ratio df1seg / icnet
        ratio = ratio_interval(result["round_medians_ms"][ICNET], result["round_medians_ms"]["df1seg"])
        out["fps_ratio_df1seg_over_icnet"] = {"ratio": ratio["ratio"], "ci95": ratio["ci95"]}
    return out


def _ratio_text(h2h: dict) -> str:
    fps = ", ".join(f"{m} {v:.1f} FPS" for m, v in h2h["fps"].items())
    r = h2h.get("fps_ratio_df1seg_over_icnet")
    return fps + (f"; DF1-Seg/ICNet {r['ratio']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r else "")


def run_caffe_time(options) -> dict:
    engine = CaffeTimeEngine(gpu=_device(options))
    engine.version()
    nets, missing = _nets(options.hw)
    h2h = _head_to_head(engine, nets, Protocol(warmup=0, repeats=options.iterations, rounds=options.rounds))
    return {"status": "pass", "head_to_head": h2h, "missing": missing,
            "detail": f"caffe time on {h2h['device']}: {_ratio_text(h2h)}"
                      + (f"; not run: {'; '.join(missing)}" if missing else "")}


def run_tensorrt(options) -> dict:
    trt = TensorRTEngine(precision="fp32")
    try:
        trt.version()
    except EngineError as err:
        raise Skip(str(err)) from None
    ort = OnnxRuntimeEngine(threads=os.cpu_count() or 1)
    nets, missing = _nets(options.hw)
    rows = _agreement(ort, trt, nets, TENSORRT_TOLERANCE)
    h2h = _head_to_head(trt, nets, Protocol(warmup=0, repeats=options.iterations * 4, rounds=options.rounds))
    bad = [r["model"] for r in rows if not r["ok"]]
    detail = ", ".join(f"{r['model']} {r['max_scaled_diff']:.2g}" for r in rows)
    return {"status": "fail" if bad else "pass", "rows": rows, "head_to_head": h2h, "missing": missing,
            "detail": f"TensorRT FP32 vs ONNX Runtime {detail} (limit {TENSORRT_TOLERANCE:g}); "
                      f"TensorRT FP32 head to head: {_ratio_text(h2h)}"}


CHILDREN = {"layers": run_layers, "gradients": run_gradients, "nets": run_nets,
            "caffe-time": run_caffe_time, "tensorrt": run_tensorrt}


@dataclass
class CheckOptions:
    """What a check is given: the CUDA device (-1: the CPU in its place), the timed passes per
    round, the rounds, and the test size HxW."""
    gpu: int = 0
    iterations: int = 50
    rounds: int = 5
    hw: tuple[int, int] = (1024, 2048)


def run_check(name: str, options: CheckOptions) -> dict:
    """Check `name`'s result; one that cannot run here is a "skip", one that breaks a "fail",
    both with the reason as one line."""
    try:
        result = CHILDREN[name](options)
    except Skip as why:
        result = {"status": "skip", "detail": str(why)}
    except (EngineError, RegistryError, RuntimeError, ValueError) as err:
        result = {"status": "fail", "detail": f"{type(err).__name__}: {' '.join(str(err).split())}"}
    result.setdefault("hw", format_hxw(options.hw))
    return result
