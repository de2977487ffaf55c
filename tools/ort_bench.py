"""ONNX Runtime (CPU) latency of every DF-Seg model and ICNet at Table 4's resolutions and
1024x2048: the "modern CPU engine" column of `make tables`.

    python -m tools.ort_bench [--models df1seg,icnet] [--sizes 360x640,1024x2048]
                              [--warmup 3] [--repeats 10] [--threads N] [--out FILE]

Each net is exported to ONNX (tools.export.onnx_convert; BN merged, the form the release times
with `caffe time`: no Softmax/ArgMax) with the engine layer's random weights -- latency does not depend on
weight values -- and timed through tools.engines (ONNX Runtime engine, the one protocol):
`warmup` untimed runs, then `repeats` timed runs; median, min and a 95 % interval are reported.

Sizes are HxW (1024x2048); Table 4's sizes, which the paper writes WxH (640x360, 1280x720,
1920x1080), are 360x640, 720x1280 and 1080x1920 here, and each row carries the paper's name
as "paper_resolution".  Nets run at the smallest size >= the asked one that they accept (the
image zero-padded): DF-Seg at multiples of 32 (360x640 runs as 384x640), ICNet at 32k + 1 (its
evaluation size is 1025x2049); the JSON records both.

Output JSON (`bench/onnxruntime.json` by default):
    {"engine": "onnxruntime", "onnxruntime_version", "provider": "CPUExecutionProvider",
     "host": {"cpu", "logical_cpus", "platform"}, "threads": {"intra_op", "inter_op"},
     "weights": "random ...", "batch": 1, "warmup", "repeats", "protocol": {...},
     "results": [{"model" (paper name, e.g. "DF1-Seg"), "name" (ours, e.g. "df1seg"),
                  "resolution" (HxW asked), "paper_resolution" (Table 4's WxH name or null),
                  "input_hw": [H, W] (asked), "run_hw": [H, W], the timing record ("median_ms",
                  "min_ms", "ci95_ms", "samples", "protocol", "engine", "machine"), "max_ms",
                  "busy", "fps" (1000 / median_ms), "times_ms": [...]}],
     "models": {model: {"resolution": {"<H>x<W>" (asked): timing record + "fps", "run_hw"}}}}
The "models" object is the view `make tables` reads (tools.report.timings, docs/tables.md).
The measuring is tools.engines.latency, the table and plot tools.report.latency.
It is rewritten after every net, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw, parse_hxw_list
from tools.engines.latency import DEFAULT_SIZES, check_model_names, default_models, onnxruntime_latency
from tools.report.latency import format_table, plot

DEFAULT_OUT = Path("bench/onnxruntime.json")


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None,
                    help="comma-separated (default: every DF-Seg model and icnet)")
    ap.add_argument("--sizes", default=",".join(format_hxw(s) for s in DEFAULT_SIZES),
                    help="comma-separated HxW sizes (default: Table 4's and 1024x2048)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="intra-op threads (default: all logical CPUs)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--plot", type=Path, help="PNG to draw (default: OUT with .png)")
    return ap


def _write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")


def _run(args) -> int:
    if args.warmup < 0 or args.repeats < 1 or args.threads < 1:
        raise CliError("--warmup must be >= 0, --repeats and --threads >= 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else default_models()
    sizes = parse_hxw_list(args.sizes, "--sizes")
    check_model_names(models)   # fail on a bad name before measuring anything
    report = onnxruntime_latency(models, sizes, args.warmup, args.repeats, args.threads,
                                 on_update=lambda report: _write(report, args.out))
    plot_path = args.plot or args.out.with_suffix(".png")
    plot(report, plot_path)
    print(format_table(report))
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.ort_bench"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
