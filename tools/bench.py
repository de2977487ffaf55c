"""Head-to-head benchmark (`make bench`, `make df1seg`): DF-Seg nets (merged BN) and ICNet timed
through the engine layer -- the real `caffe time` binary, as the paper timed, with OpenCV's DNN
module and PyTorch (the tools.to_torch module, CPU) as second engines at full size -- each
beside the paper's Titan X figure.  The second engines' outputs are checked against pycaffe's.

    python -m tools.bench [--iterations 100] [--rounds 5] [--threads 1] [--table4-iterations 10]
                          [--opencv-iterations 5] [--torch-iterations 5] [--models df1seg,icnet,...]
                          [--no-table4] [--no-opencv] [--no-torch] [--out bench]

Protocol (docs/measurement.md): the nets of one size group are timed in interleaved rounds on
each engine (`--rounds`; each round runs every net `iterations / rounds` times, in alternating
order), so a change of load hits DF1-Seg and ICNet alike; every time is reported as median, min
and a bootstrap 95 % interval, and the DF1-Seg/ICNet FPS ratio with its interval over rounds.
Threads are pinned (`--threads`, default 1: with 2 BLAS threads on a shared 2-core machine the
speed-up, and so the ratio, moves with other processes' load).

Writes ``OUT/results.json`` (after every group, so nothing measured is lost), ``OUT/results.md``
and ``OUT/fps.png``.  Sizes are HxW; Table 4's sizes are named as the paper names them (WxH:
640x360 ...) and run at the next multiple of 32 (384x640, 736x1280, 1088x1920), the sizes the
DF-Seg decoder accepts.  On a CPU these numbers are not the paper's GPU figures: the ratio
DF1-Seg/ICNet (paper: 30.7 / 30.3) is the comparable quantity.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from dfseg.base.atomic import atomic_save_figure, atomic_write_group
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw
from tools.engines import (EngineError, Protocol, busy_cpu_report, compare, describe_machine,
                           make_engine, prepare_net, ratio_interval)
from tools.engines.nets import scaled_difference
from tools.export.netparam import NetDefinitionError, write_net
from tools.registry import (ICNET, RegistryError, display_name, reference_root, run_size,
                            segmentation_models, timing_net)

REPO = Path(__file__).resolve().parent.parent

DFSEG_MODELS = tuple(segmentation_models())   # from the registry: every DF-Seg model
FULL_HW = (1024, 2048)
ICNET_HW = (1025, 2049)
# Table 4 names its sizes WxH, as the paper does; values are (H, W).
TABLE4_RESOLUTIONS = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
TABLE4_MODELS = {"DF1-Seg", "DF2-Seg1", "DF2-Seg2", "DF1-Seg-d8"}
#: engine of the engine layer -> its name in results.json (`df1seg_over_icnet.caffe` is `caffe time`)
REPORTED = {"caffe-time": "caffe", "opencv": "opencv", "onnxruntime": "onnxruntime", "pycaffe": "pycaffe",
            "torch": "torch"}
#: the second engines of `make bench`: full size only (Table 4 is a `caffe time` table), each
#: output checked against pycaffe's
SECOND_ENGINES = ("opencv", "torch")
OUTPUT_TOLERANCE = 1e-3   # a second engine's output vs pycaffe's, relative to the largest value


def padded(hw: tuple[int, int]) -> tuple[int, int]:
    return run_size("df1seg", hw)


@dataclass
class Run:
    model: str
    paper_name: str
    engine: str
    input_hw: tuple[int, int]          # the size timed
    iterations: int
    paper_hw: tuple[int, int] | None = None   # the size the paper's figure is for
    forward_ms: float | None = None           # median
    min_ms: float | None = None
    ci95_ms: tuple[float, float] | None = None
    fps: float | None = None
    busy: bool | None = None
    paper_ms: float | None = None
    paper_fps: float | None = None
    error: str | None = None
    layers: list = field(default_factory=list)


# ---------------------------------------------------------------- paper figures

def paper_figures() -> dict:
    """{(paper name, "HxW"): (ms or None, fps)} of Titan X `caffe time` figures."""
    path = reference_root() / "paper_tables.yaml"
    if not path.is_file():
        return {}
    tables = yaml.safe_load(path.read_text())
    figures = {}
    for row in tables.get("release_segmentation", []):
        if row.get("fps_titanx_caffe"):
            figures[(row["model"], "1024x2048")] = (None, row["fps_titanx_caffe"])
    for row in tables.get("table3_1080ti", []):
        if row["model"] == "ICNet" and row.get("fps_caffe"):
            figures[("ICNet", "1025x2049")] = (None, row["fps_caffe"])
    for row in tables.get("table4_titanx", []):
        for res, hw in TABLE4_RESOLUTIONS.items():
            if row.get(res):
                ms, fps = row[res]
                figures[(row["model"], format_hxw(hw))] = (ms, fps)
    return figures


# ---------------------------------------------------------------- measuring

def plan(models: list[str], table4: bool, iterations: int, t4_iterations: int) -> list[list[tuple]]:
    """Size groups of (model, paper name, paper size, iterations): the nets of one group are
    compared in interleaved rounds (full size first: the DF1-Seg/ICNet head-to-head)."""
    groups = [[(m, display_name(m), ICNET_HW if m == ICNET else FULL_HW, iterations) for m in models]]
    if table4:
        for hw in TABLE4_RESOLUTIONS.values():
            group = [(m, display_name(m), hw, t4_iterations) for m in models
                     if display_name(m) in TABLE4_MODELS]
            if group:
                groups.append(group)
    return groups


def _check_against_caffe(prepared, net, reference: dict) -> str | None:
    try:
        diff = scaled_difference(prepared.outputs(), reference)
    except EngineError as err:
        return f"{err} (Caffe's)"
    if diff > OUTPUT_TOLERANCE:
        return f"output differs from Caffe's (max diff {diff:.3g} of its largest value)"
    return None


def _reference_outputs(engine, net, key, cache: dict | None) -> dict:
    """pycaffe's outputs of `net`, computed once per `key` (model, size) when given a `cache`:
    every checked engine is compared with the same reference, at the cost of one pass."""
    if cache is not None and key in cache:
        return cache[key]
    with engine.prepare(net) as ref:
        outputs = ref.outputs()
    if cache is not None:
        cache[key] = outputs
    return outputs


def measure_group(engine_name: str, group: list[tuple], protocol: Protocol, threads: int,
                  figures: dict, nets_dir: Path, check: bool,
                  references: dict | None = None) -> tuple[list[Run], dict]:
    """Time one size group on one engine in interleaved rounds; (runs, round medians).
    `check`: compare each net's output with pycaffe's (kept in `references` for the next engine)."""
    reported = REPORTED[engine_name]
    runs, prepared = {}, {}
    engine = make_engine(engine_name, threads=threads)
    reference_engine = make_engine("pycaffe", threads=threads) if check else None
    for model, paper_name, paper_hw, iterations in group:
        ms, fps = figures.get((paper_name, format_hxw(paper_hw)), (None, None))
        run = Run(model, paper_name, reported, run_size(model, paper_hw),
                  protocol.repeats * protocol.rounds, tuple(paper_hw), paper_ms=ms, paper_fps=fps)
        runs[model] = run
        try:
            net = prepare_net(timing_net(model, paper_hw)[0])
            write_net(net.param, nets_dir / f"{model}_{engine_name}_{format_hxw(run.input_hw)}.prototxt")
            prepared[model] = engine.prepare(net)
            if reference_engine is not None:
                reference = _reference_outputs(reference_engine, net, (model, run.input_hw), references)
                run.error = _check_against_caffe(prepared[model], net, reference)
        except (EngineError, NetDefinitionError, RegistryError, ValueError) as err:
            run.error = str(err)
    bar = tqdm(total=len(prepared) * protocol.rounds, unit="run", file=sys.stderr, leave=False,
               desc=f"{reported} {format_hxw(next(iter(runs.values())).input_hw)}")
    try:
        result = compare(prepared, protocol, progress=lambda _: bar.update(1)) if prepared else \
            {"timings": {}, "round_medians_ms": {}, "errors": {}}
    finally:
        bar.close()
        for p in prepared.values():
            p.close()
    for model, why in result["errors"].items():
        runs[model].error = why
    for model, timing in result["timings"].items():
        run = runs[model]
        run.forward_ms, run.min_ms, run.ci95_ms = timing.median_ms, timing.min_ms, timing.ci95_ms
        run.fps, run.busy = 1000.0 / timing.median_ms, timing.busy
        last = getattr(prepared[model], "last", None)
        run.layers = (last or {}).get("layers", [])
    return list(runs.values()), result["round_medians_ms"]


# ---------------------------------------------------------------- reports

def head_to_head(round_medians: dict) -> dict | None:
    """DF1-Seg/ICNet FPS ratio = ICNet ms / DF1-Seg ms, from the same rounds."""
    if "df1seg" not in round_medians or ICNET not in round_medians:
        return None
    return ratio_interval(round_medians[ICNET], round_medians["df1seg"])


def measured_models(runs: list[Run]) -> dict:
    """The `make tables` view: {paper name: {"resolution": {"HxW" (paper size): {...}}}}."""
    models: dict = {}
    for r in runs:
        if r.engine == "caffe" and r.forward_ms:
            slot = models.setdefault(r.paper_name, {"resolution": {}})["resolution"]
            slot[format_hxw(r.paper_hw)] = {"forward_ms": r.forward_ms, "fps": r.fps,
                                            "run_hw": format_hxw(r.input_hw)}
    return models


def summary(runs: list[Run], ratios: dict, figures: dict, protocols: dict, threads: int,
            engines: dict) -> dict:
    paper = figures.get(("DF1-Seg", "1024x2048"), (None, None))[1], figures.get(("ICNet", "1025x2049"), (None, None))[1]
    head = {"paper": paper[0] / paper[1] if all(paper) else None}
    for engine, r in ratios.items():
        head[engine] = r["ratio"] if r else None
        head[f"{engine}_ci95"] = list(r["ci95"]) if r else None
    return {
        "machine": describe_machine(), "engines": engines,
        "threads": threads,
        "protocol": {engine: {**asdict(protocol), "threads": threads, "interleaved": True,
                              "statistic": "time: median of passes (caffe: of its per-run averages); "
                                           "ratio: median of per-round ratios, bootstrap 95 % CI over rounds"}
                     for engine, protocol in protocols.items()},
        "busy": any(r.busy for r in runs if r.busy is not None),
        "runs": [asdict(r) for r in runs],
        "df1seg_over_icnet": head,
        "engine": "caffe time", "models": measured_models(runs),
    }


def _num(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [f"# Head to head ({m['cpu']}, {m['logical_cpus']} logical CPUs, {data['threads']} thread(s); "
             f"paper: Titan X Maxwell)", "",
             "| model | engine | input (HxW) | passes | median ms | 95 % CI ms | min ms | FPS | paper ms | paper FPS | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["runs"]:
        size = format_hxw(r["input_hw"])
        if r.get("paper_hw") and tuple(r["paper_hw"]) != tuple(r["input_hw"]):
            size += f" (paper {format_hxw(r['paper_hw'])})"
        ci = f"{r['ci95_ms'][0]:.1f}–{r['ci95_ms'][1]:.1f}" if r.get("ci95_ms") else "–"
        note = r["error"] or ("busy" if r.get("busy") else "")
        lines.append(f"| {r['paper_name']} | {r['engine']} | {size} | {r['iterations']} | "
                     f"{_num(r['forward_ms'])} | {ci} | {_num(r['min_ms'])} | {_num(r['fps'])} | "
                     f"{_num(r['paper_ms'])} | {_num(r['paper_fps'], '{:.1f}')} | {note} |")
    q = data["df1seg_over_icnet"]
    parts = [f"{e} {_num(q.get(e), '{:.3f}')}" + (f" [{q[e + '_ci95'][0]:.3f}, {q[e + '_ci95'][1]:.3f}]"
                                                  if q.get(e + "_ci95") else "")
             for e in ("caffe", *SECOND_ENGINES) if e in q]
    lines += ["", f"DF1-Seg / ICNet FPS ratio (95 % CI): {', '.join(parts)}, paper {_num(q['paper'], '{:.3f}')}"
                  f" (30.7 / 30.3)"]
    for engine, p in data["protocol"].items():
        clock = "its own average per run" if engine == "caffe" else p["clock"]
        lines.append(f"Protocol ({engine}): {p['rounds']} interleaved rounds x {p['repeats']} passes per net"
                     f" after {p['warmup']} warm-up, clock: {clock}, threads {p['threads']}.")
    if data["busy"]:
        lines.append("WARNING: the machine was busy (a net's p90/p10 spread above "
                     f"{next(iter(data['protocol'].values()))['busy_spread']}): other processes skewed these times.")
    lines.append("")
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    """Left: measured FPS per engine.  Right: FPS relative to ICNet, measured and paper."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [r for r in data["runs"] if r["fps"] and tuple(r["input_hw"]) in (FULL_HW, ICNET_HW)]
    if not runs:
        return
    labels = list(dict.fromkeys(r["paper_name"] for r in runs))
    engines = sorted({r["engine"] for r in runs})
    x = np.arange(len(labels))
    width = 0.8 / (len(engines) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    paper = {r["paper_name"]: r["paper_fps"] for r in runs if r["paper_fps"]}
    series = {e: {r["paper_name"]: r["fps"] for r in runs if r["engine"] == e} for e in engines}
    for k, engine in enumerate(engines):
        left.bar(x + width * k, [series[engine].get(n, 0) for n in labels], width, label=engine)
        base = series[engine].get("ICNet")
        if base:
            right.bar(x + width * k, [series[engine].get(n, np.nan) / base for n in labels], width,
                      label=f"{engine} (measured)")
    if paper.get("ICNet"):
        right.bar(x + width * len(engines), [paper.get(n, np.nan) / paper["ICNet"] for n in labels],
                  width, label="paper (Titan X)", color="black")
    for ax, title in ((left, "measured FPS (median), full resolution"), (right, "FPS relative to ICNet")):
        ax.set_xticks(x + width * (len(engines) - 1) / 2, labels, rotation=20)
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    right.axhline(1.0, color="grey", linewidth=0.8)
    fig.suptitle(f"{data['machine']['cpu']}, {data['threads']} thread(s) "
                 f"(1024x2048; ICNet 1025x2049)")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_reports(data: dict, out: Path) -> None:
    atomic_write_group({out / "results.json": json.dumps(data, indent=2),
                        out / "results.md": markdown(data)})
    plot(data, out / "fps.png")


# ---------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=100, help="caffe time passes per net at full size (paper: 100)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the passes are split into")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes per net (engines timed by the protocol)")
    p.add_argument("--threads", type=int, default=1, help="BLAS / engine threads (default 1)")
    p.add_argument("--table4-iterations", type=int, default=10, help="passes per net at Table 4's sizes")
    p.add_argument("--opencv-iterations", type=int, default=5, help="OpenCV passes per net")
    p.add_argument("--torch-iterations", type=int, default=5, help="PyTorch (CPU) passes per net")
    p.add_argument("--models", default=",".join([*DFSEG_MODELS, ICNET]),
                   help="comma-separated (default: all DF-Seg models and icnet)")
    p.add_argument("--no-table4", action="store_true")
    p.add_argument("--no-opencv", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench")
    return p


def run(args) -> int:
    models = [m for m in args.models.split(",") if m]
    known = [*DFSEG_MODELS, ICNET]
    unknown = [m for m in models if m not in known]
    if unknown:
        raise CliError(f"unknown models {unknown} (known: {', '.join(known)})")
    if min(args.iterations, args.table4_iterations, args.opencv_iterations, args.torch_iterations,
           args.rounds, args.threads) < 1:
        raise CliError("--iterations, --table4-iterations, --opencv-iterations, --torch-iterations, "
                       "--rounds and --threads must be >= 1")
    nets_dir = args.out / "nets"
    nets_dir.mkdir(parents=True, exist_ok=True)
    report = busy_cpu_report()
    if report:
        print(f"bench: warning: {report}", file=sys.stderr)
    figures = paper_figures()
    engines = {"caffe-time": None}   # engine -> passes per net (None: the size group's)
    if not args.no_opencv:
        engines["opencv"] = args.opencv_iterations
    if not args.no_torch:
        engines["torch"] = args.torch_iterations
    try:
        described = {REPORTED[e]: make_engine(e, threads=args.threads).describe() for e in engines}
    except EngineError as err:
        raise CliError(str(err)) from None
    runs, ratios, protocols = [], {}, {}
    data, references = {}, {}
    for g, group in enumerate(tqdm(plan(models, not args.no_table4, args.iterations, args.table4_iterations),
                                   desc="bench", unit="size", file=sys.stderr)):
        for engine, passes in engines.items():
            if engine in SECOND_ENGINES and g > 0:
                continue   # second engines at full size only: Table 4 is a `caffe time` table
            protocol = Protocol.splitting(passes or group[0][3], args.rounds, warmup=args.warmup)
            measured, medians = measure_group(engine, group, protocol, args.threads, figures, nets_dir,
                                              check=engine in SECOND_ENGINES, references=references)
            runs += measured
            if g == 0:
                ratios[REPORTED[engine]] = head_to_head(medians)
                protocols[REPORTED[engine]] = protocol
            data = summary(runs, ratios, figures, protocols, args.threads, described)
            write_reports(data, args.out)
        references.clear()   # the references of one size group (full-size outputs: ~160 MB a net)
    sys.stdout.write(markdown(data))
    failed = [r for r in runs if r.error]
    for r in failed:
        print(f"bench: {r.model} ({r.engine}, {format_hxw(r.input_hw)}): {r.error}", file=sys.stderr)
    return 1 if failed and len(failed) == len(runs) else 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(_parser().parse_args(argv)), "bench",
                   expected=(EngineError, RegistryError, NetDefinitionError))


if __name__ == "__main__":
    sys.exit(main())
