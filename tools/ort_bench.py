"""ONNX Runtime (CPU) latency of every DF-Seg model and ICNet at Table 4's resolutions and
1024x2048: the "modern CPU engine" column of `make tables`.

    python -m tools.ort_bench [--models df1seg,icnet] [--sizes 640x360,1024x2048]
                              [--warmup 3] [--repeats 10] [--threads N] [--out FILE]

Each net is exported with tools.to_onnx (BN merged, the form the release times with `caffe
time`: no Softmax/ArgMax) with RANDOM weights — latency does not depend on weight values —
and run single-batch: `warmup` untimed runs, then the median of `repeats` timed runs.

Sizes are named as the paper names them: Table 4's 640x360, 1280x720, 1920x1080 are
width x height; the release table's 1024x2048 is height x width. Nets run at the smallest
size >= the asked one that they accept (the image zero-padded): DF-Seg at multiples of 32
(640x360 runs as 640x384), ICNet at 32k + 1 (its evaluation size is 1025x2049); the JSON
records both.

Output JSON (`bench/onnxruntime.json` by default):
    {"engine": "onnxruntime", "onnxruntime_version", "provider": "CPUExecutionProvider",
     "host": {"cpu", "logical_cpus", "platform"}, "threads": {"intra_op", "inter_op"},
     "weights": "random ...", "batch": 1, "warmup", "repeats",
     "results": [{"model" (paper name, e.g. "DF1-Seg"), "name" (ours, e.g. "df1seg"),
                  "resolution" (as named above), "input_hw": [H, W] (asked), "run_hw": [H, W],
                  "median_ms", "min_ms", "max_ms", "fps" (1000 / median_ms), "times_ms": [...]}],
     "models": {model: {"resolution": {"<H>x<W>" (asked): {"median_ms", "fps", "run_hw"}}}}}
The "models" object is the schema `make tables` reads (docs/tables.md).
It is rewritten after every net, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tools.platform_info import cpu_model
from tools.common.atomic import atomic_save_figure, atomic_write_text

DEFAULT_OUT = Path("bench/onnxruntime.json")
SEG_MODELS = ("df1seg", "df1seg_d8", "df2seg1", "df2seg1_d8", "df2seg2", "df2seg2_d8",
              "dflite_seg", "dflite_seg_d8")
MODELS = SEG_MODELS + ("icnet",)
#: Table 4's resolutions (width x height) and the release table's 1024x2048 (height x width).
SIZES = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920),
         "1024x2048": (1024, 2048)}
RANDOM_WEIGHTS_NOTE = "random (seeded); latency does not depend on weight values"


class BenchError(ValueError):
    pass


def reference_dir() -> Path:
    repo = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("DFSEG_REFERENCE", repo.parent / "shared" / "reference"))


def parse_size(text: str) -> tuple[str, tuple[int, int]]:
    """A resolution name → (name, (H, W)); names not in SIZES are read as WxH like Table 4."""
    if text in SIZES:
        return text, SIZES[text]
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchError(f"size {text!r} is not WxH (e.g. 640x360) nor one of "
                         f"{', '.join(SIZES)}") from None
    if w < 1 or h < 1:
        raise BenchError(f"size {text!r} must be positive")
    return text, (h, w)


def check_model_name(name: str) -> None:
    if name == "icnet":
        return
    from prototxt_gen.models import load_model
    try:
        load_model(name)
    except Exception as err:  # noqa: BLE001 - the registry's own message names the problem
        raise BenchError(f"unknown model {name!r}: {err}") from None


def model_net(name: str, hw: tuple[int, int]):
    """(paper name, NetParameter, size run) of a benchmarked model at input size `hw`."""
    if name == "icnet":
        from tools.reference_nets import icnet_deploy, icnet_input_size
        run_hw = icnet_input_size(hw)
        ref = reference_dir()
        if not (ref / "icnet" / "icnet_cityscapes.prototxt").is_file():
            raise BenchError(f"ICNet prototxt not found under {ref}/icnet (set DFSEG_REFERENCE)")
        return "ICNet", icnet_deploy(ref, run_hw), run_hw
    from prototxt_gen.generate import net_for
    from prototxt_gen.models import load_model
    check_model_name(name)
    named = load_model(name)
    run_hw = dfseg_input_size(hw)
    return named.display_name, net_for(name, "caffetime_mergebn", input_size=run_hw), run_hw


def dfseg_input_size(hw: tuple[int, int]) -> tuple[int, int]:
    """DF-Seg's decoder joins 1/32, 1/16 and 1/8 features through x2 deconvolutions, so its
    sides must be multiples of 32: the smallest such size >= `hw` (the image zero-padded),
    e.g. Table 4's 640x360 runs as 640x384."""
    return tuple(-(-s // 32) * 32 for s in hw)


def time_session(session, feeds, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def make_session(model, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def bench(models, sizes, warmup: int, repeats: int, threads: int, out: Path,
          progress: bool = True) -> dict:
    import onnxruntime as ort
    from tqdm import tqdm

    from tools.to_onnx import convert
    report = {
        "engine": "onnxruntime", "onnxruntime_version": ort.__version__,
        "provider": "CPUExecutionProvider",
        "host": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                 "platform": platform.platform()},
        "threads": {"intra_op": threads, "inter_op": 1},
        "weights": RANDOM_WEIGHTS_NOTE, "batch": 1, "warmup": warmup, "repeats": repeats,
        "results": [],
    }
    jobs = [(m, s) for m in models for s in sizes]
    for name, (label, hw) in tqdm(jobs, desc="onnxruntime", unit="net", disable=not progress):
        display, param, run_hw = model_net(name, hw)
        session = make_session(convert(param, None, seed=0), threads)
        x = np.random.default_rng(0).normal(size=(1, 3) + tuple(run_hw)).astype(np.float32)
        times = time_session(session, {session.get_inputs()[0].name: x}, warmup, repeats)
        median = statistics.median(times)
        report["results"].append({
            "model": display, "name": name, "resolution": label, "input_hw": list(hw),
            "run_hw": list(run_hw), "median_ms": round(median, 3),
            "min_ms": round(min(times), 3), "max_ms": round(max(times), 3),
            "fps": round(1000.0 / median, 2), "times_ms": [round(t, 3) for t in times],
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
            note = "" if r["run_hw"] == r["input_hw"] else f" @{r['run_hw'][1]}x{r['run_hw'][0]}"
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.ort_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated (default: {','.join(MODELS)})")
    ap.add_argument("--sizes", default=",".join(SIZES),
                    help=f"comma-separated resolutions (default: {','.join(SIZES)})")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="intra-op threads (default: all logical CPUs)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--plot", type=Path, help="PNG to draw (default: OUT with .png)")
    args = ap.parse_args(argv)
    from tools.caffe_net import CaffeNetError
    try:
        if args.warmup < 0 or args.repeats < 1 or args.threads < 1:
            raise BenchError("--warmup must be >= 0, --repeats and --threads >= 1")
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        sizes = [parse_size(s.strip()) for s in args.sizes.split(",") if s.strip()]
        for m in models:  # fail on a bad name before measuring anything
            check_model_name(m)
        report = bench(models, sizes, args.warmup, args.repeats, args.threads, args.out)
    except (BenchError, CaffeNetError) as err:
        print(f"ort_bench: error: {err}", file=sys.stderr)
        return 2
    plot_path = args.plot or args.out.with_suffix(".png")
    plot(report, plot_path)
    print(format_table(report))
    print(f"\nwrote {args.out} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
