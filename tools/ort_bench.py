"""ONNX Runtime (CPU) latency of every DF-Seg model and ICNet at Table 4's resolutions and
1024x2048: the "modern CPU engine" column of `make tables`.

    python -m tools.ort_bench [--models df1seg,icnet] [--sizes 360x640,1024x2048]
                              [--warmup 3] [--repeats 10] [--threads N] [--out FILE]

Each net is exported with tools.to_onnx (BN merged, the form the release times with `caffe
time`: no Softmax/ArgMax) with the engine layer's random weights -- latency does not depend on
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
                  "input_hw": [H, W] (asked), "run_hw": [H, W], "median_ms", "min_ms",
                  "max_ms", "ci95_ms", "busy", "fps" (1000 / median_ms), "times_ms": [...]}],
     "models": {model: {"resolution": {"<H>x<W>" (asked): {"median_ms", "fps", "run_hw"}}}}}
The "models" object is the schema `make tables` reads (docs/tables.md).
It is rewritten after every net, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from dfseg.base.atomic import atomic_save_figure, atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw, parse_hxw
from tools.engines import EngineError, OnnxRuntimeEngine, Protocol, describe_machine, time_one
from tools.registry import ICNET, RegistryError, display_name, segmentation_models, timing_net

DEFAULT_OUT = Path("bench/onnxruntime.json")
#: Table 4's sizes as HxW, with the paper's WxH names
TABLE4_SIZES = {(360, 640): "640x360", (720, 1280): "1280x720", (1080, 1920): "1920x1080"}
DEFAULT_SIZES = [*TABLE4_SIZES, (1024, 2048)]
RANDOM_WEIGHTS_NOTE = "random (seeded, tools.export.caffemodel.random_weights); latency does not depend on weight values"


class BenchError(CliError):
    pass


def default_models() -> list[str]:
    return [*segmentation_models(), ICNET]


def check_model_name(name: str) -> None:
    try:
        display_name(name)
    except RegistryError as err:
        raise BenchError(str(err)) from None


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [parse_hxw(s.strip()) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise BenchError(f"--sizes: {err}") from None


def bench(models, sizes, warmup: int, repeats: int, threads: int, out: Path,
          progress: bool = True) -> dict:
    engine = OnnxRuntimeEngine(threads=threads)
    protocol = Protocol(warmup=warmup, repeats=repeats, rounds=1)
    info = engine.describe()
    report = {
        "engine": "onnxruntime", "onnxruntime_version": info["version"].split()[-1],
        "provider": "CPUExecutionProvider",
        "host": {"cpu": info["cpu"], "logical_cpus": info["logical_cpus"], "platform": info["platform"]},
        "threads": {"intra_op": threads, "inter_op": 1},
        "weights": RANDOM_WEIGHTS_NOTE, "batch": 1, "warmup": warmup, "repeats": repeats,
        "protocol": {"warmup": warmup, "repeats": repeats, "clock": protocol.clock,
                     "threads": threads, "machine": describe_machine()},
        "results": [],
    }
    jobs = [(m, s) for m in models for s in sizes]
    for name, hw in tqdm(jobs, desc="onnxruntime", unit="net", disable=not progress):
        param, run_hw = timing_net(name, hw)
        with engine.prepare(param) as run:
            timing = time_one(run, protocol)
        report["results"].append({
            "model": display_name(name), "name": name, "resolution": format_hxw(hw),
            "paper_resolution": TABLE4_SIZES.get(tuple(hw)), "input_hw": list(hw),
            "run_hw": list(run_hw), "median_ms": round(timing.median_ms, 3),
            "min_ms": round(timing.min_ms, 3), "max_ms": round(max(timing.samples_ms), 3),
            "ci95_ms": [round(v, 3) for v in timing.ci95_ms], "busy": timing.busy,
            "fps": round(1000.0 / timing.median_ms, 2),
            "times_ms": [round(v, 3) for v in timing.samples_ms],
        })
        report["models"] = models_summary(report["results"])
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")  # keep what is measured so far
    return report


def models_summary(results: list[dict], prefer: str | None = None) -> dict:
    """The `make tables` view of `results` (docs/tables.md, "Measured results"):
    {model: {"resolution": {"<H>x<W>" asked: {"median_ms", "fps", "run_hw"}}}}. With several
    precisions per size, the `prefer`red one is shown (its name under "precision")."""
    models: dict = {}
    for r in results:
        key = f"{r['input_hw'][0]}x{r['input_hw'][1]}"
        slot = models.setdefault(r["model"], {"resolution": {}})["resolution"]
        if key in slot and r.get("precision") != prefer:
            slot[key][f"{r['precision']}_ms"] = r["median_ms"]
            continue
        entry = {"median_ms": r["median_ms"], "fps": r["fps"],
                 "run_hw": f"{r['run_hw'][0]}x{r['run_hw'][1]}"}
        if "precision" in r:
            entry["precision"] = r["precision"]
            entry.update({k: v for k, v in slot.get(key, {}).items() if k.endswith("_ms")
                          and k != "median_ms"})
            entry[f"{r['precision']}_ms"] = r["median_ms"]
        slot[key] = entry
    return models


def format_table(report: dict) -> str:
    sizes = list(dict.fromkeys(r["resolution"] for r in report["results"]))
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    cell = {(r["model"], r["resolution"]): r for r in report["results"]}
    head = "| model | " + " | ".join(f"{s} ms (FPS)" for s in sizes) + " |"
    lines = [head, "|" + "---|" * (len(sizes) + 1)]
    for m in models:
        row = []
        for s in sizes:
            r = cell.get((m, s))
            if r is None:
                row.append("-")
                continue
            note = "" if r["run_hw"] == r["input_hw"] else f" @{format_hxw(r['run_hw'])}"
            row.append(f"{r['median_ms']:.1f} ({r['fps']:.1f}){note}")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"ONNX Runtime {report['onnxruntime_version']} CPU, "
                 f"{report['threads']['intra_op']} threads on {report['host']['cpu']} "
                 f"({report['host']['logical_cpus']} logical CPUs); batch 1, median of "
                 f"{report['repeats']} after {report['warmup']} warm-up runs; weights: "
                 f"{report['weights']}.")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = list(dict.fromkeys(r["resolution"] for r in report["results"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for model in dict.fromkeys(r["model"] for r in report["results"]):
        rows = {r["resolution"]: r for r in report["results"] if r["model"] == model}
        xs = [i for i, s in enumerate(sizes) if s in rows]
        ax.plot(xs, [rows[sizes[i]]["median_ms"] for i in xs], marker="o", label=model)
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yscale("log")
    ax.set_xlabel("input resolution")
    ax.set_ylabel("median latency (ms, log)")
    ax.set_title(f"ONNX Runtime CPU, {report['threads']['intra_op']} threads, batch 1 "
                 f"(random weights)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.ort_bench",
                                 description=__doc__.split("\n")[0])
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


def run(args) -> int:
    if args.warmup < 0 or args.repeats < 1 or args.threads < 1:
        raise BenchError("--warmup must be >= 0, --repeats and --threads >= 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else default_models()
    sizes = parse_sizes(args.sizes)
    for m in models:  # fail on a bad name before measuring anything
        check_model_name(m)
    report = bench(models, sizes, args.warmup, args.repeats, args.threads, args.out)
    plot_path = args.plot or args.out.with_suffix(".png")
    plot(report, plot_path)
    print(format_table(report))
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(_parser().parse_args(argv)), "ort_bench",
                   expected=(EngineError, RegistryError))


if __name__ == "__main__":
    sys.exit(main())
