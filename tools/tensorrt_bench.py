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
import sys
from pathlib import Path

import numpy as np
from dfseg.base.atomic import atomic_write_text
from dfseg.base.sizes import format_hxw
from tools.engines import EngineError, prepare_net
from tools.engines.onnxruntime import export_onnx
from tools.ort_bench import (DEFAULT_SIZES, BenchError, check_model_name, default_models,
                             models_summary, parse_sizes)
from tools.registry import RegistryError, display_name, timing_net
from tools.engines.tensorrt import (Cuda, LayerTimes, TensorRTBuildError, TensorRTUnavailable,
                                   _import_tensorrt, build_engine, fp16_model, run_engine)

NAME_COLUMNS = 40  # the release's sample pads and cuts layer names to 40 columns


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


# ----------------------------------------------------------------------------- CLI


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def bench(jobs, precisions, warmup, iterations, out_dir: Path) -> dict:
    """jobs: (display name, name, resolution label, asked hw, run hw, onnx model)."""
    import tensorrt as trt
    from tqdm import tqdm

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

    ap = argparse.ArgumentParser(prog="python -m tools.tensorrt_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("onnx", nargs="*", type=Path, help="ONNX models to benchmark as they are")
    ap.add_argument("--models", help="named nets to export (e.g. df1seg,icnet); default: every "
                    "DF-Seg model and icnet when no ONNX file is given")
    ap.add_argument("--sizes", default=",".join(format_hxw(s) for s in DEFAULT_SIZES),
                    help="comma-separated HxW sizes (default: Table 4's and 1024x2048)")
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
        names = args.models.split(",") if args.models else ([] if args.onnx else default_models())
        sizes = parse_sizes(args.sizes)
        for name in names:
            check_model_name(name.strip())
        for name in names:
            for hw in sizes:
                param, run_hw = timing_net(name.strip(), hw)
                jobs.append((display_name(name.strip()), name.strip(), format_hxw(hw), hw, run_hw,
                             export_onnx(prepare_net(param))))
        report = bench(jobs, precisions, args.warmup, args.iterations, args.out_dir)
    except (TensorRTUnavailable, TensorRTBuildError, BenchError, EngineError, RegistryError) as err:
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
