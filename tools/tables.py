"""Rebuild the paper's and the release README's tables from logs, beside the published
figures and the numbers measured on this machine.

    python -m tools.tables --logs DIR [--json] [--out DIR] [--paper YAML] [--bench DIR]

* ``--json`` prints the release tables rebuilt from the logs, exactly
  ``{"segmentation": [{"model", "miou_val", "fps_1080ti_1024x2048", "fps_1080ti_1024x1024",
  "fps_titanx_caffe"}], "backbones": [{"model", "top1"}]}`` (mIoU and top-1 in percent,
  FPS = 1000 / ms, rounded as the paper prints them; null where no log gives the figure).
* ``--out DIR`` writes ``tables.md``, ``tables.html`` (self-contained, plot embedded),
  ``tables.json`` and ``fig1_miou_vs_fps.png``.  Without ``--json``/``--out`` the Markdown
  goes to stdout.

Which log gives which figure is decided by its file name (the release's naming; see
`LOG_NAMING` and docs/tables.md).  Measured figures are read from JSON result files (see
`MEASURED_ENGINES` and `load_measured`); a missing file shows as "—".
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.cityscapes_eval import parse_cityscapes_eval
from tools.log_parsers import (LogParseError, parse_caffe_test, parse_caffe_time,
                               parse_tensorrt_profile, read_log)
from tools.comparison_tables import ENGINES as COMPARISON_ENGINES
from tools.comparison_tables import (ComparisonFormatError, comparison_tables, load_paper_bench,
                                     plot_fig5)
from tools.common.atomic import atomic_write_group

REPO = Path(__file__).resolve().parent.parent
DASH = "—"

# ------------------------------------------------------------------------ log naming
#
# <model> is the model's name in lower case with "-" written as "_" or dropped
# (df1seg, df1seg_d8, dflite_seg, df2seg1, df1, df2a, icnet); an optional "_mergebn" after it
# is ignored.  <HxW> is height x width in pixels; <device> is e.g. titanx, 1080ti, tx2.
LOG_NAMING = [
    # caffe time of the whole net: Titan X "caffe time" column (input size from the log).
    ("caffe_time", re.compile(
        r"^log_(?P<model>.+?)(?:_mergebn)?_caffetime(?:_(?P<res>\d+x\d+))?_(?P<device>[a-z0-9]+)\.(?:txt|log)$")),
    # TensorRT profile; "scoreup8" times the net with its final x8 up-sampling (the full
    # model), "score" stops at the 1/8-resolution score map, which is the -d8 model.
    ("tensorrt_profile", re.compile(
        r"^log_(?P<model>.+?)(?:_mergebn)?_profile_(?P<output>scoreup8|score)_(?P<res>\d+x\d+)"
        r"_(?P<device>[a-z0-9]+)\.(?:txt|log)$")),
    # Cityscapes evaluation output of the model's predictions on a split.  The release's
    # "pred_d8_u8_<model>" files score the 1/8-resolution prediction (d8) up-sampled x8 (u8)
    # for evaluation: the <model>-d8 net's mIoU.
    ("cityscapes_eval", re.compile(
        r"^pred_(?P<d8>d8_u8_)?(?P<model>.+?)(?:_mergebn)?_(?P<split>val|test|train)\.(?:txt|log)$")),
    # caffe test of a backbone on ImageNet val: top-1.
    ("caffe_test", re.compile(r"^log_(?P<model>.+?)(?:_mergebn)?_(?P<split>val|test)\.(?:txt|log)$")),
]


def model_key(name: str) -> str:
    """Spelling-independent model key: "DF1-Seg-d8", "df1seg_d8", "df1segd8" -> "df1segd8"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass
class Figure:
    value: float          # ms for timings, percent for accuracies
    source: str           # log file name
    note: str = ""


@dataclass
class LogFigures:
    """Everything read from a log directory."""
    accuracy: dict = field(default_factory=dict)   # (model, "miou_val" | "miou_test" | "top1") -> Figure (percent)
    timing: dict = field(default_factory=dict)     # (model, platform, "HxW") -> Figure (ms)
    skipped: list = field(default_factory=list)    # (file, reason)
    used: list = field(default_factory=list)       # (file, what it gave)


def _resolution_of(shape: list[int] | None) -> str | None:
    return f"{shape[2]}x{shape[3]}" if shape and len(shape) == 4 else None


def read_logs(log_dir: Path, known_models: list[str], progress: bool = True) -> LogFigures:
    """Read every log of `log_dir` whose name follows LOG_NAMING.  Files that do not, name an
    unknown model, or lack their figure are listed in `skipped` with the reason."""
    from tqdm import tqdm

    by_key = {model_key(m): m for m in known_models}
    figs = LogFigures()
    files = sorted(p for p in log_dir.iterdir() if p.is_file())
    for path in tqdm(files, desc="logs", unit="file", disable=not progress):
        kind, m = next(((k, rx.match(path.name)) for k, rx in LOG_NAMING if rx.match(path.name)), (None, None))
        if kind is None:
            figs.skipped.append((path.name, "name follows none of the log naming rules"))
            continue
        token = model_key(m["model"])
        if kind == "tensorrt_profile" and m["output"] == "score" and not token.endswith("d8"):
            token += "d8"
        elif kind == "tensorrt_profile" and m["output"] == "scoreup8" and token.endswith("d8"):
            figs.skipped.append((path.name, "a -d8 model has no x8 up-sampling to time (scoreup8)"))
            continue
        elif kind == "cityscapes_eval" and m["d8"] and not token.endswith("d8"):
            token += "d8"
        model = by_key.get(token)
        if model is None:
            figs.skipped.append((path.name, f"unknown model {m['model']!r}"))
            continue
        try:
            text = read_log(path)
            if kind == "caffe_time":
                r = parse_caffe_time(text, path.name)
                res = m["res"] or _resolution_of(r["input_shape"])
                if res is None:
                    raise LogParseError(path.name, "input size neither in the name nor in the log's Top shape lines")
                key = (model, f"{m['device']}_caffe", res)
                _put(figs.timing, key, Figure(r["forward_ms"], path.name, f"{r['iterations']} iterations"), figs)
                figs.used.append((path.name, f"{model}: caffe time {res} on {m['device']}: {r['forward_ms']:g} ms"))
            elif kind == "tensorrt_profile":
                r = parse_tensorrt_profile(text, path.name)
                key = (model, f"{m['device']}_tensorrt", m["res"])
                _put(figs.timing, key, Figure(r["total_ms"], path.name, f"output {m['output']}"), figs)
                figs.used.append((path.name, f"{model}: TensorRT {m['res']} on {m['device']}: {r['total_ms']:g} ms"))
            elif kind == "cityscapes_eval":
                r = parse_cityscapes_eval(text, path.name)
                _put(figs.accuracy, (model, f"miou_{m['split']}"), Figure(r["miou"] * 100, path.name), figs)
                figs.used.append((path.name, f"{model}: mIoU {m['split']} {r['miou'] * 100:.1f}"))
            else:
                r = parse_caffe_test(text, path.name)
                if r["top1"] is None:
                    raise LogParseError(path.name, "no top-1 accuracy output")
                _put(figs.accuracy, (model, "top1"), Figure(r["top1"] * 100, path.name, f"{r['batches']} batches"), figs)
                figs.used.append((path.name, f"{model}: top-1 {r['top1'] * 100:.2f}"))
        except LogParseError as exc:
            figs.skipped.append((path.name, str(exc)))
    return figs


def _put(table: dict, key, fig: Figure, figs: LogFigures) -> None:
    if key in table and not math.isclose(table[key].value, fig.value, rel_tol=1e-9):
        figs.skipped.append((fig.source, f"gives {fig.value:g} for {key}, but {table[key].source} already "
                                         f"gave {table[key].value:g}; keeping the first"))
        return
    table.setdefault(key, fig)


# ----------------------------------------------------------------- measured results

# Engines whose measurements `make tables` shows, and the file each writes (under --bench).
MEASURED_ENGINES = [
    ("caffe_cpu", "caffe time (CPU, here)", "results.json"),
    ("onnxruntime", "ONNX Runtime (CPU, here)", "onnxruntime.json"),
    ("tensorrt", "TensorRT (here)", "tensorrt.json"),
]


class MeasuredFormatError(ValueError):
    pass


def load_measured(path: Path) -> dict[tuple[str, str], float] | None:
    """Read one measured-results file: ``{"models": {MODEL: {"resolution": {"HxW": {"forward_ms":
    ms, "fps": fps}}}}}`` (optional top-level "engine", "device"; the "resolution" level may be
    left out; a resolution entry may give "median_ms" or "ms" instead of "forward_ms", or only
    "fps").  MODEL is a paper name or a
    generator name (DF1-Seg-d8 or df1seg_d8); HxW is height x width.  Returns
    {(model_key, "HxW"): ms}, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MeasuredFormatError(f"{path}: not readable JSON ({exc})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise MeasuredFormatError(f"{path}: expected an object with a \"models\" object")
    out = {}
    for name, entry in models.items():
        resolutions = entry.get("resolution") if isinstance(entry, dict) else None
        if resolutions is None and isinstance(entry, dict) and entry and all(
                re.fullmatch(r"\d+x\d+", k) for k in entry):
            resolutions = entry   # {"HxW": {...}} directly under the model is read the same
        if not isinstance(resolutions, dict):
            raise MeasuredFormatError(f"{path}: models.{name} lacks a \"resolution\" object")
        for res, timing in resolutions.items():
            if not re.fullmatch(r"\d+x\d+", res) or not isinstance(timing, dict):
                raise MeasuredFormatError(f"{path}: models.{name}.resolution.{res}: expected \"HxW\": {{...}}")
            ms = next((timing[k] for k in ("forward_ms", "median_ms", "ms") if isinstance(timing.get(k), (int, float))), None)
            if ms is None and isinstance(timing.get("fps"), (int, float)) and timing["fps"] > 0:
                ms = 1000.0 / timing["fps"]
            if ms is None or ms <= 0:
                raise MeasuredFormatError(f"{path}: models.{name}.resolution.{res} has no positive "
                                          f"forward_ms / median_ms / ms / fps")
            out[(model_key(name), res)] = float(ms)
    return out


# ------------------------------------------------------------------------ the tables

def _r(value, digits):
    return None if value is None else round(value, digits)


def fps(ms: float | None) -> float | None:
    return None if ms is None else 1000.0 / ms


def release_tables(figs: LogFigures, paper: dict | None) -> dict:
    """The release README's segmentation table and backbone column, rebuilt from the logs
    (rows: the paper's models in its order, then any other model a log names)."""
    seg_models = [r["model"] for r in (paper or {}).get("release_segmentation", [])]
    bb_models = [r["model"] for r in (paper or {}).get("release_backbones", [])]
    for model, *_ in list(figs.timing) + list(figs.accuracy):
        is_backbone = (model, "top1") in figs.accuracy
        target = bb_models if is_backbone else seg_models
        if model not in seg_models and model not in bb_models:
            target.append(model)

    def timing(model, platform, res):
        f = figs.timing.get((model, platform, res))
        return _r(fps(f.value), 1) if f else None

    def acc(model, what, digits):
        f = figs.accuracy.get((model, what))
        return _r(f.value, digits) if f else None

    return {
        "segmentation": [{
            "model": m,
            "miou_val": acc(m, "miou_val", 1),
            "fps_1080ti_1024x2048": timing(m, "1080ti_tensorrt", "1024x2048"),
            "fps_1080ti_1024x1024": timing(m, "1080ti_tensorrt", "1024x1024"),
            "fps_titanx_caffe": timing(m, "titanx_caffe", "1024x2048"),
        } for m in seg_models],
        "backbones": [{"model": m, "top1": acc(m, "top1", 2)} for m in bb_models],
    }


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _fmt(value, digits=1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _beside(log_value, paper_value, digits=1) -> str:
    """A log figure with its difference to the paper's."""
    if log_value is None:
        return DASH
    if paper_value is None:
        return _fmt(log_value, digits)
    # The difference of the figures as printed (rounded), so 106.08 beside 106.1 reads +0.0.
    diff = round(round(log_value, digits) - paper_value, digits) + 0.0
    return f"{log_value:.{digits}f} ({diff:+.{digits}f})"


def _ms_fps(ms: float | None) -> str:
    return DASH if ms is None else f"{ms:.2f} / {1000.0 / ms:.1f}"


def _paper_ms_fps(pair) -> str:
    if not pair:
        return DASH
    ms, f = pair
    return f"{DASH if ms is None else format(ms, 'g')} / {_fmt(f, 1)}"  # ms as the paper prints them


def _wxh_to_hxw(res: str) -> str:
    w, h = res.split("x")
    return f"{h}x{w}"


def build_tables(figs: LogFigures, paper: dict | None, measured: dict) -> list[Table]:
    paper = paper or {}
    rel = release_tables(figs, paper)
    tables = []

    paper_seg = {r["model"]: r for r in paper.get("release_segmentation", [])}
    cols = [("miou_val", 1), ("fps_1080ti_1024x2048", 1), ("fps_1080ti_1024x1024", 1), ("fps_titanx_caffe", 1)]
    rows = []
    for r in rel["segmentation"]:
        p = paper_seg.get(r["model"], {})
        cells = [r["model"]]
        for col, digits in cols:
            cells += [_fmt(p.get(col), digits), _beside(r[col], p.get(col), digits)]
        rows.append(cells)
    header = ["Model"]
    for title in ("mIoU val", "FPS 1080Ti 1024x2048", "FPS 1080Ti 1024x1024", "FPS Titan X caffe"):
        header += [f"{title} (paper)", f"{title} (logs, Δ)"]
    tables.append(Table("Release README: segmentation", header, rows,
                        "Logs column: figure rebuilt from the log, with its difference to the published one."))

    paper_bb = {r["model"]: r for r in paper.get("release_backbones", [])}
    rows = [[r["model"], _fmt(paper_bb.get(r["model"], {}).get("top1"), 2),
             _beside(r["top1"], paper_bb.get(r["model"], {}).get("top1"), 2)] for r in rel["backbones"]]
    tables.append(Table("Release README: backbones (ImageNet val, single-crop top-1 %)",
                        ["Model", "top-1 (paper)", "top-1 (logs, Δ)"], rows))

    engines = [(label, measured.get(name)) for name, label, _ in MEASURED_ENGINES]

    def measured_cells(model: str, hxw: str) -> list[str]:
        return [DASH if data is None else _ms_fps(data.get((model_key(model), hxw))) for _, data in engines]

    # Table 3: 1080Ti, 1024x2048, and Caffe on Titan X.
    rows = []
    for p in paper.get("table3_1080ti", []):
        m = p["model"]
        miou = figs.accuracy.get((m, "miou_val"))
        trt = figs.timing.get((m, "1080ti_tensorrt", "1024x2048"))
        caffe = figs.timing.get((m, "titanx_caffe", "1024x2048"))
        paper_fps = _fmt(p.get("fps")) + (f" ({p['note']})" if p.get("note") else "")
        rows.append([m, _fmt(p.get("miou_val")), _beside(miou.value if miou else None, p.get("miou_val")),
                     _fmt(p.get("miou_test")),
                     paper_fps, _beside(fps(trt.value) if trt else None, p.get("fps")),
                     _fmt(p.get("fps_caffe")), _beside(fps(caffe.value) if caffe else None, p.get("fps_caffe"))]
                    + measured_cells(m, "1024x2048"))
    tables.append(Table(
        "Table 3: real-time segmentation (1080Ti TensorRT FPS at 1024x2048; Caffe FPS on Titan X)",
        ["Model", "mIoU val (paper)", "mIoU val (logs, Δ)", "mIoU test (paper)", "FPS 1080Ti (paper)",
         "FPS 1080Ti (logs, Δ)", "FPS Caffe (paper)", "FPS Caffe (logs, Δ)"]
        + [f"{label} 1024x2048 ms / FPS" for label, _ in engines], rows,
        "Measured columns are this project's machines, not a 1080Ti or a Titan X: compare them "
        "with each other, not with the paper's absolute figures."))

    for key, title, platform in (("table4_titanx", "Table 4: Titan X (Maxwell), ms / FPS", "titanx_tensorrt"),
                                 ("table5_tx2", "Table 5: Jetson TX2, ms / FPS", "tx2_tensorrt")):
        entries = paper.get(key, [])
        resolutions = sorted({k for e in entries for k in e if re.fullmatch(r"\d+x\d+", k)},
                             key=lambda s: int(s.split("x")[0]))
        header = ["Model"]
        for res in resolutions:
            header += [f"{res} paper", f"{res} logs"] + [f"{res} {label}" for label, _ in engines]
        rows = []
        for e in entries:
            cells = [e["model"]]
            for res in resolutions:
                hxw = _wxh_to_hxw(res)   # the paper writes width x height here
                f = figs.timing.get((e["model"], platform, hxw))
                cells += [_paper_ms_fps(e.get(res)), _ms_fps(f.value if f else None)] + measured_cells(e["model"], hxw)
            rows.append(cells)
        tables.append(Table(title, header, rows, "Resolutions are width x height, as the paper prints them."))

    # Every timing any log gave, those of devices no paper column covers included (e.g. a
    # TensorRT profile written on this project's GPU in the release's format).
    rows = []
    for (model, platform, res), f in sorted(figs.timing.items()):
        device, engine = platform.rsplit("_", 1)
        rows.append([model, "caffe time" if engine == "caffe" else "TensorRT", device, res,
                     f"{f.value:.3f}", f"{1000.0 / f.value:.1f}", f"{f.source}" + (f" ({f.note})" if f.note else "")])
    tables.append(Table("All timings read from logs", ["Model", "Engine", "Device", "HxW", "ms", "FPS", "Log"], rows,
                        "Height x width. FPS = 1000 / ms, batch 1."))
    return tables


# ------------------------------------------------------------------------ the outputs

def plot_fig1(figs: LogFigures, paper: dict | None) -> bytes:
    """Fig. 1-style plot: Cityscapes mIoU against 1080Ti FPS (1024x2048); paper points and
    the points rebuilt from logs.  Returns PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    pts = []
    for p in (paper or {}).get("table3_1080ti", []):
        miou = p.get("miou_val") if p.get("miou_val") is not None else p.get("miou_test")
        if miou is not None and p.get("fps") is not None:
            pts.append((p["fps"], miou, p["model"], p["model"].startswith("DF"), p.get("miou_val") is None))
    for x, y, name, ours, test_only in pts:
        color = "tab:red" if ours else "tab:gray"
        ax.scatter(x, y, marker="o", s=45, zorder=3, edgecolors=color,
                   facecolors="none" if test_only else color)  # hollow: test mIoU only
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    df = sorted((x, y) for x, y, _, ours, _ in pts if ours)
    if df:
        ax.plot(*zip(*df), color="tab:red", alpha=0.4, lw=1, label="DF-Seg (paper)")
    logged = []
    for (model, platform, res), f in figs.timing.items():
        acc = figs.accuracy.get((model, "miou_val"))
        if platform == "1080ti_tensorrt" and res == "1024x2048" and acc:
            logged.append((fps(f.value), acc.value))
    if logged:
        ax.scatter(*zip(*logged), marker="*", s=180, color="tab:blue", zorder=4, label="rebuilt from released logs")
    ax.scatter([], [], marker="o", color="tab:gray", label="other methods (paper)")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="tab:gray", label="test mIoU (no val published)")
    ax.set_xlabel("FPS on 1080Ti (1024x2048; BiSeNet at 1536x768)")
    ax.set_ylabel("Cityscapes mIoU (%) (val; test where val is not published)")
    ax.set_title("Speed / accuracy (Fig. 1 style)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.1))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(tables: list[Table], figs: LogFigures, sources: dict) -> str:
    out = ["# Paper tables: paper | released logs | measured here", ""]
    out += [f"- {k}: {v}" for k, v in sources.items()] + [""]
    for t in tables:
        out += [f"## {t.title}", ""]
        out.append("| " + " | ".join(map(_md_cell, t.header)) + " |")
        out.append("|" + "|".join("---" for _ in t.header) + "|")
        out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in t.rows]
        if t.note:
            out += ["", t.note]
        out.append("")
    out += ["## Logs read", ""] + [f"- `{f}`: {what}" for f, what in figs.used]
    if figs.skipped:
        out += ["", "## Logs not used", ""] + [f"- `{f}`: {why}" for f, why in figs.skipped]
    return "\n".join(out) + "\n"


def to_html(tables: list[Table], figs: LogFigures, sources: dict, png: bytes) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>dfseg: paper tables</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;margin-bottom:.5em;font-size:13px}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#eee}"
             "p.note{color:#555;font-size:12px}</style></head><body>",
             "<h1>Paper tables: paper | released logs | measured here</h1><ul>"]
    parts += [f"<li>{e(k)}: {e(str(v))}</li>" for k, v in sources.items()]
    parts.append("</ul>")
    parts.append(f"<img alt='mIoU vs FPS' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in t.header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows]
        parts.append("</table>" + (f"<p class='note'>{e(t.note)}</p>" if t.note else ""))
    parts.append("<h2>Logs read</h2><ul>" + "".join(f"<li><code>{e(f)}</code>: {e(w)}</li>" for f, w in figs.used) + "</ul>")
    if figs.skipped:
        parts.append("<h2>Logs not used</h2><ul>"
                     + "".join(f"<li><code>{e(f)}</code>: {e(w)}</li>" for f, w in figs.skipped) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def measured_comparison_tables(comparison: dict) -> list[Table]:
    """Tables 1 and 4 as measured here by `make bench-paper` (bench/paper.json)."""
    def cells(r):
        return [DASH if r["measured"].get(e) is None else f"{r['measured'][e]:.1f}" for e in COMPARISON_ENGINES]
    t1 = [[r["model"], _fmt(r["paper"]["top1"]), _fmt(r["paper"]["latency_ms_tx2"])] + cells(r)
          for r in comparison["table1"]]
    t4 = [[r["model"], r["size"], _paper_ms_fps((r["paper"]["ms_titanx"], r["paper"]["fps_titanx"]))] + cells(r)
          for r in comparison["table4"]]
    engines = [f"{e} ms (here)" for e in COMPARISON_ENGINES]
    note = "Measured: `make bench-paper` (bench/paper.json), batch 1, this machine's CPU; – where not measured."
    return [Table("Table 1 measured here (224x224)", ["Model", "top-1 (paper)", "TX2 ms (paper)"] + engines, t1, note),
            Table("Table 4 measured here (sizes WxH, as the paper)", ["Model", "size", "Titan X ms / FPS (paper)"]
                  + engines, t4, note)]


# ---------------------------------------------------------------------------- the CLI

def default_paper_tables() -> Path:
    root = Path(os.environ.get("DFSEG_REFERENCE", REPO.parent / "shared" / "reference"))
    return root / "paper_tables.yaml"


def known_model_names(paper: dict | None) -> list[str]:
    """Model names logs may name: the paper's, plus the generator's named models."""
    names = []
    for key in ("release_segmentation", "release_backbones", "table3_1080ti", "table4_titanx", "table5_tx2",
                "table1_tx2_backbones"):
        names += [r["model"] for r in (paper or {}).get(key, [])]
    try:
        from prototxt_gen.models import load_model, model_names
        names += [load_model(n).display_name for n in model_names()]
    except ImportError:  # the generator is optional here: paper names suffice for the release logs
        pass
    return list(dict.fromkeys(names))


def _fail(message: str) -> int:
    print(f"tables: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.tables", description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=Path, required=True, help="directory of logs in the release's naming")
    ap.add_argument("--json", action="store_true", help="print the rebuilt release tables as JSON")
    ap.add_argument("--out", type=Path, help="write tables.md, tables.html, tables.json, fig1_miou_vs_fps.png here")
    ap.add_argument("--paper", type=Path, default=None,
                    help="paper_tables.yaml (default: $DFSEG_REFERENCE or ../shared/reference)")
    ap.add_argument("--bench", type=Path, default=REPO / "bench",
                    help="directory of measured results (%s)" % ", ".join(f for *_, f in MEASURED_ENGINES))
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    if not args.logs.is_dir():
        return _fail(f"{args.logs}: log directory not found")
    paper_path = args.paper or default_paper_tables()
    paper = None
    if paper_path.is_file():
        try:
            paper = yaml.safe_load(paper_path.read_text())
        except yaml.YAMLError as exc:
            return _fail(f"{paper_path}: not valid YAML ({exc})")
    elif args.paper:
        return _fail(f"{paper_path}: paper tables not found")
    else:
        print(f"tables: warning: {paper_path} not found; no paper columns", file=sys.stderr)

    figs = read_logs(args.logs, known_model_names(paper), progress=not args.quiet)
    measured = {}
    try:
        for name, _, filename in MEASURED_ENGINES:
            measured[name] = load_measured(args.bench / filename)
    except MeasuredFormatError as exc:
        return _fail(str(exc))
    release = release_tables(figs, paper)
    try:
        comparison = comparison_tables(paper, load_paper_bench(args.bench / "paper.json"))
    except ComparisonFormatError as exc:
        return _fail(str(exc))
    release.update(comparison)

    if args.json:
        print(json.dumps(release, indent=2))
    if args.out or not args.json:
        tables = build_tables(figs, paper, measured) + measured_comparison_tables(comparison)
        sources = {"logs": args.logs, "paper": paper_path if paper else "not found",
                   **{label: (args.bench / f) if measured[n] is not None else f"{args.bench / f} (absent)"
                      for n, label, f in MEASURED_ENGINES}}
        markdown = to_markdown(tables, figs, sources)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            png = plot_fig1(figs, paper)
            atomic_write_group({args.out / "fig1_miou_vs_fps.png": png,
                                args.out / "fig5_top1_vs_latency.png": plot_fig5(comparison["table1"]),
                                args.out / "tables.md": markdown,
                                args.out / "tables.html": to_html(tables, figs, sources, png),
                                args.out / "tables.json": json.dumps(release, indent=2) + "\n"})
            if not args.json:
                print(f"wrote {args.out}/tables.md, tables.html, tables.json, fig1_miou_vs_fps.png, "
                      f"fig5_top1_vs_latency.png")
        elif not args.json:
            sys.stdout.write(markdown)
    for name, why in figs.skipped:
        print(f"tables: note: {name}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
