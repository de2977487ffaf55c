"""Fig. 1 redrawn: Cityscapes mIoU against FPS, the published points of the POP paper's Fig. 1
(tools/report/fig1_points.yaml, each figure with its source) and, beside each, the FPS measured
here (bench/paper.json's "fig1" rows, `make bench-paper`) on every engine at the same input
size, drawn at the mIoU its paper reports.

A row: {"model", "name", "hxw", "paper": {"miou_test", "fps", "device", "miou_source",
"fps_source"}, "measured": {engine: ms}, "errors": {engine: why}}.
"""
from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

from dfseg.base.errors import InputError
from dfseg.base.sizes import SizeError, parse_hxw
from dfseg.base.textfile import TextFileError, read_yaml

__all__ = ["Fig1PointsError", "ENGINE_MARKERS", "fig1_points", "plot_fig1_measured"]

POINTS_FILE = "fig1_points.yaml"
REQUIRED = ("model", "name", "miou_test", "miou_source", "fps", "hxw", "fps_source")
LABEL_GAP = 0.7   # mIoU points between two labels (about a line of 7-point text on this plot)
ENGINE_MARKERS = {"caffe": ("s", "caffe time"), "opencv": ("^", "OpenCV DNN"), "onnxruntime": ("D", "ONNX Runtime")}


class Fig1PointsError(InputError, ValueError):
    pass


def _checked(i: int, p, where: str) -> dict:
    if not isinstance(p, dict):
        raise Fig1PointsError(f"{where}: points[{i}]: expected a mapping")
    missing = [k for k in REQUIRED if k not in p]
    if missing:
        raise Fig1PointsError(f"{where}: points[{i}] ({p.get('model', '?')}): lacks {', '.join(missing)}")
    for key in ("miou_source", "fps_source"):
        if not (isinstance(p[key], str) and p[key].strip()):
            raise Fig1PointsError(f"{where}: points[{i}] ({p['model']}): {key} is empty: every figure needs its source")
    try:
        hw = parse_hxw(str(p["hxw"]))
    except SizeError as err:
        raise Fig1PointsError(f"{where}: points[{i}] ({p['model']}): {err}") from None
    return {**p, "hw": hw}


def fig1_points(path: Path | None = None) -> list[dict]:
    """The published points, each with "hw" (the parsed size) added."""
    source = path or resources.files("tools.report") / POINTS_FILE
    try:
        data = read_yaml(source, "Fig. 1 points (YAML)", mapping=True)
    except TextFileError as err:
        raise Fig1PointsError(str(err)) from None
    points = data.get("points")
    if not isinstance(points, list) or not points:
        raise Fig1PointsError(f"{source}: expected a non-empty list under 'points'")
    return [_checked(i, p, str(source)) for i, p in enumerate(points)]


def _draw_row(ax, r: dict, engines: list[str], label_y: float) -> None:
    y, ours = r["paper"]["miou_test"], r["model"].startswith("DF")
    color = "tab:red" if ours else "tab:gray"
    xs = []
    if r["paper"]["fps"]:
        ax.scatter(r["paper"]["fps"], y, marker="o", s=55, color=color, zorder=4)
        xs.append(r["paper"]["fps"])
    for engine in engines:
        ms = r["measured"].get(engine)
        if ms:
            ax.scatter(1000.0 / ms, y, marker=ENGINE_MARKERS[engine][0], s=38, facecolors="none",
                       edgecolors=color, zorder=3)
            xs.append(1000.0 / ms)
    if xs:
        ax.plot([min(xs), max(xs)], [y, y], color=color, alpha=0.35, lw=1, zorder=2)
        ax.annotate(f"{r['model']} ({r['hxw']})", (max(xs), y), xytext=(max(xs) * 1.15, label_y),
                    textcoords="data", fontsize=7, va="center")


def plot_fig1_measured(rows: list[dict], engines: list[str]) -> bytes:
    """PNG bytes: each net at its paper's mIoU, its published FPS (filled) and the FPS measured
    here on each engine (hollow, one marker per engine), joined by a line; FPS on a log axis
    (a CPU thread and a GPU differ by orders of magnitude)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    label_y = None
    for r in sorted(rows, key=lambda r: r["paper"]["miou_test"]):
        # labels of nets close in mIoU are stacked apart (LABEL_GAP mIoU points at least)
        y = r["paper"]["miou_test"]
        label_y = y if label_y is None else max(y, label_y + LABEL_GAP)
        _draw_row(ax, r, engines, label_y)
    ax.scatter([], [], marker="o", color="tab:gray", label="published (each paper's GPU)")
    ax.scatter([], [], marker="o", color="tab:red", label="DF-Seg, published (1080Ti TensorRT)")
    for engine in engines:
        marker, label = ENGINE_MARKERS[engine]
        ax.scatter([], [], marker=marker, facecolors="none", edgecolors="black", label=f"here: {label} (CPU, 1 thread)")
    ax.set_xscale("log")
    ax.set_xlabel("FPS (batch 1) at the size the paper's figure is for (in brackets, HxW)")
    ax.set_ylabel("Cityscapes test mIoU (%), as each paper reports it")
    ax.set_title("Fig. 1 redrawn: published speed and the speed measured here")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)  # below: no point hidden
    missing = [r["model"] for r in rows if not r["paper"]["fps"] and not any(r["measured"].values())]
    if missing:
        ax.text(0.99, 0.01, "not drawn (no published FPS, not measured): " + ", ".join(missing),
                transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
