"""Head-to-head benchmark (`make bench`): DF-Seg nets (merged BN) and ICNet timed with the real
`caffe time`, each beside the paper's Titan X figure, plus OpenCV's DNN module as a second
engine.

    python -m tools.bench [--iterations 100] [--table4-iterations 10] [--opencv-iterations 5]
                          [--models df1seg,icnet,...] [--no-table4] [--no-opencv] [--out bench]

Writes ``OUT/results.json`` (after every run, so nothing measured is lost), ``OUT/results.md``
and ``OUT/fps.png``.  Nets: the generator's ``caffetime_mergebn`` form of each DF-Seg model at
1024x2048 and ICNet's own ``icnet_cityscapes.prototxt`` (1025x2049, as ICNet times it);
Table 4's resolutions (640x360, 1280x720, 1920x1080) for the models in Table 4, with fewer
iterations — timed at the next multiple of 32 (640x384, 1280x736, 1920x1088), the sizes the
DF-Seg decoder accepts, and shown beside the paper's figure for the nominal resolution.  On a CPU these numbers are not the paper's GPU figures: the ratio DF1-Seg/ICNet
(paper: 30.7 / 30.3) is the comparable quantity.

OpenCV: its Caffe importer gets ``shrink_factor`` Interp wrong (4.14), so every Interp given
by factors is rewritten to the explicit height/width Caffe computes before OpenCV reads the
net; OpenCV gets the TEST-phase view of each net, with the random weights Caffe saved.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from prototxt_gen import caffe_pb2
from prototxt_gen.analysis import phase_view as inference_view  # the one phase filter
from tools.caffe_locate import CaffeNotFound, import_caffe
from tools.caffe_time import CaffeTimeError, busy_cpu_report, run_caffe_time
from tools.platform_info import cpu_model
from tools.netparam import (NetDefinitionError, legacy_inputs_to_layer, load_net, read_net,
                            write_net)
from tools.common.atomic import atomic_save_figure, atomic_write_group, atomic_write_text

REPO = Path(__file__).resolve().parent.parent

# Model name in dfseg -> name in paper_tables.yaml.
DFSEG_MODELS = {"df1seg": "DF1-Seg", "df1seg_d8": "DF1-Seg-d8", "df2seg1": "DF2-Seg1",
                "df2seg2": "DF2-Seg2", "dflite_seg": "DFlite-Seg", "dflite_seg_d8": "DFlite-Seg-d8"}
ICNET = "icnet"
FULL_HW = (1024, 2048)
ICNET_HW = (1025, 2049)
TABLE4_RESOLUTIONS = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
# The DF-Seg decoder concatenates x2-upsampled 1/32 features with 1/16 ones, so its input
# must be a multiple of 32 (360 -> 384, 720 -> 736, 1080 -> 1088).
STRIDE = 32


def padded(hw: tuple[int, int]) -> tuple[int, int]:
    return tuple(-(-d // STRIDE) * STRIDE for d in hw)


@dataclass
class Run:
    model: str
    paper_name: str
    engine: str
    input_hw: tuple[int, int]          # the size timed
    iterations: int
    paper_hw: tuple[int, int] | None = None   # the size the paper's figure is for
    forward_ms: float | None = None
    fps: float | None = None
    paper_ms: float | None = None
    paper_fps: float | None = None
    error: str | None = None
    layers: list = field(default_factory=list)


# ---------------------------------------------------------------- paper figures

def reference_root() -> Path:
    return Path(os.environ.get("DFSEG_REFERENCE", REPO.parent / "shared" / "reference"))


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
        for res, (h, w) in TABLE4_RESOLUTIONS.items():
            if row.get(res):
                ms, fps = row[res]
                figures[(row["model"], f"{h}x{w}")] = (ms, fps)
    return figures


# ---------------------------------------------------------------- nets

def caffe_time_net(model: str, hw: tuple[int, int]) -> caffe_pb2.NetParameter:
    if model == ICNET:
        if hw != ICNET_HW:
            raise NetDefinitionError(f"ICNet's prototxt has fixed Interp sizes for {ICNET_HW}")
        return legacy_inputs_to_layer(read_net(reference_root() / "icnet" / "icnet_cityscapes.prototxt"))
    from prototxt_gen.generate import net_for
    return net_for(model, "caffetime_mergebn", input_size=hw)


def explicit_interp_sizes(net: caffe_pb2.NetParameter, blob_shapes: dict) -> caffe_pb2.NetParameter:
    """Interp layers given by shrink/zoom factors and pads rewritten to the height/width Caffe
    computed (OpenCV 4.14 mis-sizes shrink_factor)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        p = layer.interp_param
        if layer.type == "Interp" and (p.HasField("shrink_factor") or p.HasField("zoom_factor")
                                       or p.pad_beg or p.pad_end):
            h, w = blob_shapes[layer.top[0]][2:]
            p.Clear()
            p.height, p.width = h, w
    return out


# ---------------------------------------------------------------- engines

def time_caffe(model: str, paper_name: str, paper_hw, iterations: int, figures: dict, nets_dir: Path) -> Run:
    hw = paper_hw if model == ICNET else padded(paper_hw)
    key = f"{hw[0]}x{hw[1]}"
    ms, fps = figures.get((paper_name, f"{paper_hw[0]}x{paper_hw[1]}"), (None, None))
    run = Run(model, paper_name, "caffe", tuple(hw), iterations, tuple(paper_hw), paper_ms=ms, paper_fps=fps)
    try:
        path = nets_dir / f"{model}_caffetime_{key}.prototxt"
        write_net(caffe_time_net(model, hw), path)
        result = run_caffe_time(path, iterations, phase="TRAIN", warn_busy=False,
                                log_path=nets_dir / f"{model}_caffetime_{key}.log")
        run.forward_ms, run.fps, run.layers = result["forward_ms"], result["fps"], result["layers"]
    except (CaffeTimeError, NetDefinitionError, ValueError) as e:
        run.error = str(e)
    return run


def time_opencv(caffe, model: str, paper_name: str, hw, iterations: int, nets_dir: Path) -> Run:
    import cv2
    key = f"{hw[0]}x{hw[1]}"
    run = Run(model, paper_name, "opencv", tuple(hw), iterations, tuple(hw))
    try:
        param = inference_view(caffe_time_net(model, hw))
        net = load_net(caffe, param, "TEST")            # Caffe fills the random weights
        shapes = {name: blob.data.shape for name, blob in net.blobs.items()}
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "w.caffemodel"
            net.save(str(weights))
            path = nets_dir / f"{model}_opencv_{key}.prototxt"
            write_net(explicit_interp_sizes(param, shapes), path)
            cv_net = cv2.dnn.readNetFromCaffe(str(path), str(weights))
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, *hw)).astype(np.float32)
        cv_net.setInput(x)
        cv_out = cv_net.forward()                       # warm-up, and a check against Caffe
        net.blobs["data"].data[...] = x
        ref = net.forward()[net.outputs[-1]]
        if cv_out.shape != ref.shape or np.abs(cv_out - ref).max() > 1e-3 * max(np.abs(ref).max(), 1e-6):
            run.error = (f"OpenCV output differs from Caffe's (shape {cv_out.shape} vs {ref.shape}, "
                         f"max diff {np.abs(cv_out - ref).max() if cv_out.shape == ref.shape else 'n/a'})")
        times = []
        for _ in range(iterations):
            cv_net.setInput(x)
            start = time.perf_counter()
            cv_net.forward()
            times.append((time.perf_counter() - start) * 1000)
        run.forward_ms = float(np.mean(times))
        run.fps = 1000.0 / run.forward_ms
    except (cv2.error, NetDefinitionError, ValueError, KeyError) as e:
        run.error = f"OpenCV: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}"
    return run


# ---------------------------------------------------------------- reports

def ratio(runs: list[Run], engine: str, a: str = "df1seg", b: str = ICNET) -> float | None:
    fps = {r.model: r.fps for r in runs if r.engine == engine and r.fps and
           r.input_hw in (FULL_HW, ICNET_HW)}
    return fps[a] / fps[b] if a in fps and b in fps else None


def summary(runs: list[Run], figures: dict) -> dict:
    paper = figures.get(("DF1-Seg", "1024x2048"), (None, None))[1], figures.get(("ICNet", "1025x2049"), (None, None))[1]
    return {
        "device": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "runs": [{k: v for k, v in asdict(r).items()} for r in runs],
        "df1seg_over_icnet": {"caffe": ratio(runs, "caffe"), "opencv": ratio(runs, "opencv"),
                              "paper": paper[0] / paper[1] if all(paper) else None},
    }


def _num(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def markdown(data: dict) -> str:
    lines = [f"# Head to head ({data['cpu_model']}, {data['cores']} cores; paper: Titan X Maxwell)", "",
             "| model | engine | input | iterations | forward ms | FPS | paper ms | paper FPS | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in data["runs"]:
        h, w = r["input_hw"]
        size = f"{w}x{h}"
        if r.get("paper_hw") and tuple(r["paper_hw"]) != tuple(r["input_hw"]):
            size += f" (paper {r['paper_hw'][1]}x{r['paper_hw'][0]})"
        lines.append(f"| {r['paper_name']} | {r['engine']} | {size} | {r['iterations']} | "
                     f"{_num(r['forward_ms'])} | {_num(r['fps'])} | {_num(r['paper_ms'])} | "
                     f"{_num(r['paper_fps'], '{:.1f}')} | {r['error'] or ''} |")
    q = data["df1seg_over_icnet"]
    lines += ["", f"DF1-Seg / ICNet FPS ratio: caffe {_num(q['caffe'])}, opencv {_num(q['opencv'])}, "
                  f"paper {_num(q['paper'])} (30.7 / 30.3)", ""]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    """Left: measured FPS per engine.  Right: FPS relative to ICNet, measured and paper —
    the figure a CPU can compare with the paper's Titan X."""
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
    for ax, title in ((left, "measured FPS, full resolution"), (right, "FPS relative to ICNet")):
        ax.set_xticks(x + width * (len(engines) - 1) / 2, labels, rotation=20)
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    right.axhline(1.0, color="grey", linewidth=0.8)
    fig.suptitle(f"{data['cpu_model']}, {data['cores']} cores (1024x2048; ICNet 1025x2049)")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_reports(runs: list[Run], figures: dict, out: Path) -> dict:
    data = summary(runs, figures)
    atomic_write_group({out / "results.json": json.dumps(data, indent=2),
                        out / "results.md": markdown(data)})
    plot(data, out / "fps.png")
    return data


# ---------------------------------------------------------------- CLI

def plan(models: list[str], table4: bool, iterations: int, t4_iterations: int):
    figures_names = {**DFSEG_MODELS, ICNET: "ICNet"}
    cases = [(m, figures_names[m], ICNET_HW if m == ICNET else FULL_HW, iterations) for m in models]
    if table4:
        in_table4 = {"DF1-Seg", "DF2-Seg1", "DF2-Seg2", "DF1-Seg-d8"}
        for m in models:
            if figures_names[m] in in_table4:
                cases += [(m, figures_names[m], hw, t4_iterations) for hw in TABLE4_RESOLUTIONS.values()]
    return cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=100, help="caffe time iterations at full size (paper: 100)")
    p.add_argument("--table4-iterations", type=int, default=10, help="iterations at Table 4's resolutions")
    p.add_argument("--opencv-iterations", type=int, default=5, help="OpenCV forward passes per net")
    p.add_argument("--models", default=",".join([*DFSEG_MODELS, ICNET]),
                   help="comma-separated (default: all DF-Seg models and icnet)")
    p.add_argument("--no-table4", action="store_true")
    p.add_argument("--no-opencv", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in DFSEG_MODELS and m != ICNET]
    if unknown:
        print(f"bench: error: unknown models {unknown} (known: {', '.join([*DFSEG_MODELS, ICNET])})",
              file=sys.stderr)
        return 2
    if min(args.iterations, args.table4_iterations, args.opencv_iterations) < 1:
        print("bench: error: iteration counts must be at least 1", file=sys.stderr)
        return 2
    try:
        caffe = import_caffe()
    except CaffeNotFound as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    caffe.set_mode_cpu()
    args.out.mkdir(parents=True, exist_ok=True)
    nets_dir = args.out / "nets"
    nets_dir.mkdir(exist_ok=True)
    report = busy_cpu_report()
    if report:
        print(f"bench: warning: {report}", file=sys.stderr)
    figures = paper_figures()
    cases = plan(models, not args.no_table4, args.iterations, args.table4_iterations)
    runs: list[Run] = []
    for model, paper_name, hw, iterations in tqdm(cases, desc="bench", unit="net", file=sys.stderr):
        runs.append(time_caffe(model, paper_name, hw, iterations, figures, nets_dir))
        write_reports(runs, figures, args.out)
        if not args.no_opencv and hw in (FULL_HW, ICNET_HW):
            runs.append(time_opencv(caffe, model, paper_name, hw, args.opencv_iterations, nets_dir))
            write_reports(runs, figures, args.out)
    data = write_reports(runs, figures, args.out)
    sys.stdout.write(markdown(data))
    failed = [r for r in runs if r.error]
    for r in failed:
        print(f"bench: {r.model} ({r.engine}, {r.input_hw[1]}x{r.input_hw[0]}): {r.error}", file=sys.stderr)
    return 1 if failed and len(failed) == len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
