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
"precision", the timing record ("median_ms": CUDA events around execute_async_v3, "min_ms",
"ci95_ms", "samples", "protocol", "engine", "machine"), "median_with_copies_ms" (host-to-device
input and device-to-host outputs included), "fps", "profile_total_ms" (sum of the profiler's
per-layer means), "profile_log"}], "models": {model: {"resolution": {"<H>x<W>": timing record
(FP16 where measured) + "fps", "run_hw", "precision", "fp32_ms", "fp16_ms"}}}} — "models" is
what `make tables` reads (tools.report.timings).  The measuring is
tools.engines.tensorrt_profile.

Needs the `tensorrt` and `cuda-python` wheels and an NVIDIA GPU; both are imported lazily,
so this module (and its profile formatter) imports anywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw, parse_hxw_list
from tools.engines.latency import DEFAULT_SIZES, check_model_names, default_models, export_jobs
from tools.engines.tensorrt import Cuda, _import_tensorrt
from tools.engines.tensorrt_profile import tensorrt_latency


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("onnx", nargs="*", type=Path, help="ONNX models to benchmark as they are")
    ap.add_argument("--models", help="named nets to export (e.g. df1seg,icnet); default: every "
                    "DF-Seg model and icnet when no ONNX file is given")
    ap.add_argument("--sizes", default=",".join(format_hxw(s) for s in DEFAULT_SIZES),
                    help="comma-separated HxW sizes (default: Table 4's and 1024x2048)")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out-dir", type=Path, default=Path("bench"))
    return ap


def _onnx_jobs(paths: list[Path]) -> list[tuple]:
    """The ONNX files given, each benchmarked as it is at its own input size."""
    import onnx

    jobs = []
    for path in paths:
        try:
            model = onnx.load(path)
        except Exception as err:  # noqa: BLE001 - onnx raises several types
            raise CliError(f"{path}: not a readable ONNX model ({err})") from None
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        hw = tuple(dims[2:4])
        jobs.append((path.stem, path.stem, format_hxw(hw), hw, hw, model))
    return jobs


def _run(args) -> int:
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or set(precisions) - {"fp32", "fp16"}:
        raise CliError(f"--precisions takes fp32 and/or fp16, got {args.precisions!r}")
    if args.warmup < 0 or args.iterations < 1:
        raise CliError("--warmup must be >= 0 and --iterations >= 1")
    _import_tensorrt()
    Cuda()
    names = [n.strip() for n in args.models.split(",")] if args.models else \
        ([] if args.onnx else default_models())
    sizes = parse_hxw_list(args.sizes, "--sizes")
    check_model_names(names)
    jobs = _onnx_jobs(args.onnx) + export_jobs(names, sizes)
    summary = args.out_dir / "tensorrt.json"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report = tensorrt_latency(jobs, precisions, args.warmup, args.iterations, args.out_dir,
                              on_update=lambda r: atomic_write_text(summary, json.dumps(r, indent=1) + "\n"))
    for r in report["results"]:
        print(f"{r['model']:<14} {r['resolution']:>10} {r['precision']}  "
              f"{r['median_ms']:8.3f} ms  {r['fps']:8.1f} FPS  (layers {r['profile_total_ms']:.3f} ms,"
              f" with copies {r['median_with_copies_ms']:.3f} ms)")
    print(f"{report['gpu']}, TensorRT {report['tensorrt_version']}; random weights; "
          f"wrote {summary} and the profile logs")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.tensorrt_bench"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
