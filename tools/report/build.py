"""The tables: each paper / release table as rows of cells, the paper's figure beside the one
rebuilt from the logs (with the difference) and the ones measured here."""
from __future__ import annotations

import re
from dataclasses import dataclass

from tools.report.comparison import ENGINES as COMPARISON_ENGINES

from .log_figures import LogFigures, model_key
from .measured import MEASURED_ENGINES

DASH = "—"


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


def _measured_cells(engines: list[tuple[str, dict | None]], model: str, hxw: str) -> list[str]:
    """One "ms / FPS" cell per measured engine (— where its file or the figure is absent)."""
    return [DASH if data is None else _ms_fps(data.get((model_key(model), hxw))) for _, data in engines]


def _release_segmentation_table(rel: dict, paper: dict) -> Table:
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
    return Table("Release README: segmentation", header, rows,
                 "Logs column: figure rebuilt from the log, with its difference to the published one.")


def _release_backbones_table(rel: dict, paper: dict) -> Table:
    paper_bb = {r["model"]: r for r in paper.get("release_backbones", [])}
    rows = [[r["model"], _fmt(paper_bb.get(r["model"], {}).get("top1"), 2),
             _beside(r["top1"], paper_bb.get(r["model"], {}).get("top1"), 2)] for r in rel["backbones"]]
    return Table("Release README: backbones (ImageNet val, single-crop top-1 %)",
                 ["Model", "top-1 (paper)", "top-1 (logs, Δ)"], rows)


def _table3(figs: LogFigures, paper: dict, engines: list) -> Table:
    """Table 3: 1080Ti, 1024x2048, and Caffe on Titan X."""
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
                    + _measured_cells(engines, m, "1024x2048"))
    return Table(
        "Table 3: real-time segmentation (1080Ti TensorRT FPS at 1024x2048; Caffe FPS on Titan X)",
        ["Model", "mIoU val (paper)", "mIoU val (logs, Δ)", "mIoU test (paper)", "FPS 1080Ti (paper)",
         "FPS 1080Ti (logs, Δ)", "FPS Caffe (paper)", "FPS Caffe (logs, Δ)"]
        + [f"{label} 1024x2048 ms / FPS" for label, _ in engines], rows,
        "Measured columns are this project's machines, not a 1080Ti or a Titan X: compare them "
        "with each other, not with the paper's absolute figures.")


def _device_table(figs: LogFigures, paper: dict, engines: list, key: str, title: str,
                  platform: str) -> Table:
    """Table 4 (Titan X) or 5 (TX2): ms / FPS per resolution, paper | logs | measured here."""
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
            cells += [_paper_ms_fps(e.get(res)), _ms_fps(f.value if f else None)] + _measured_cells(engines, e["model"], hxw)
        rows.append(cells)
    return Table(title, header, rows, "Resolutions are width x height, as the paper prints them.")


def _all_timings_table(figs: LogFigures) -> Table:
    # Every timing any log gave, those of devices no paper column covers included (e.g. a
    # TensorRT profile written on this project's GPU in the release's format).
    rows = []
    for (model, platform, res), f in sorted(figs.timing.items()):
        device, engine = platform.rsplit("_", 1)
        rows.append([model, "caffe time" if engine == "caffe" else "TensorRT", device, res,
                     f"{f.value:.3f}", f"{1000.0 / f.value:.1f}", f"{f.source}" + (f" ({f.note})" if f.note else "")])
    return Table("All timings read from logs", ["Model", "Engine", "Device", "HxW", "ms", "FPS", "Log"], rows,
                 "Height x width. FPS = 1000 / ms, batch 1.")


def build_tables(figs: LogFigures, paper: dict | None, measured: dict) -> list[Table]:
    paper = paper or {}
    rel = release_tables(figs, paper)
    engines = [(label, measured.get(name)) for name, label, _ in MEASURED_ENGINES]
    tables = [_release_segmentation_table(rel, paper), _release_backbones_table(rel, paper),
              _table3(figs, paper, engines)]
    for key, title, platform in (("table4_titanx", "Table 4: Titan X (Maxwell), ms / FPS", "titanx_tensorrt"),
                                 ("table5_tx2", "Table 5: Jetson TX2, ms / FPS", "tx2_tensorrt")):
        tables.append(_device_table(figs, paper, engines, key, title, platform))
    tables.append(_all_timings_table(figs))
    return tables


def _why(text: str, width: int = 90) -> str:
    """An engine's reason, short enough for a table cell (the full text is in tables.json)."""
    text = " ".join(str(text).split())
    # OpenCV's own prefix ("OpenCV(4.x) /path/file.hpp:108: error: (-2:Unspecified error) ")
    # says nothing a reader needs; what follows it does
    text = re.sub(r"OpenCV\([^)]*\) \S+: error: \([^)]*\) ", "", text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _engine_cells(r: dict) -> list[str]:
    """ms per engine, or — and the reason it has none."""
    return [f"{r['measured'][e]:.1f}" if r["measured"].get(e) is not None
            else f"{DASH} ({_why(r['errors'].get(e, 'not measured'))})" for e in COMPARISON_ENGINES]


def measured_comparison_tables(comparison: dict) -> list[Table]:
    """Tables 1, 3, 4, 5 and Fig. 1's nets as measured here by `make bench-paper` (bench/paper.json)."""
    engines = [f"{e} ms (here)" for e in COMPARISON_ENGINES]
    note = ("Measured: `make bench-paper` (bench/paper.json), batch 1, this machine's CPU, 1 thread; "
            "a cell without a time says why.")
    t1 = [[r["model"], _fmt(r["paper"]["top1"]), _fmt(r["paper"]["latency_ms_tx2"])] + _engine_cells(r)
          for r in comparison["table1"]]
    t3 = [[r["model"], r["hxw"], _fmt(r["paper"]["miou_test"]), _fmt(r["paper"]["fps_1080ti"]),
           _fmt(r["paper"]["fps_titanx_caffe"])] + _engine_cells(r) for r in comparison["table3"]]
    t4 = [[r["model"], r["size"], _paper_ms_fps((r["paper"]["ms_titanx"], r["paper"]["fps_titanx"]))]
          + _engine_cells(r) for r in comparison["table4"]]
    t5 = [[r["model"], r["size"], _paper_ms_fps((r["paper"]["ms_tx2"], r["paper"]["fps_tx2"]))]
          + _engine_cells(r) for r in comparison["table5"]]
    f1 = [[r["model"], r["hxw"], _fmt(r["paper"]["miou_test"]), _fmt(r["paper"]["fps"]),
           r["paper"]["device"] or DASH] + _engine_cells(r) for r in comparison.get("fig1", [])]
    return [Table("Table 1 measured here (224x224)", ["Model", "top-1 (paper)", "TX2 ms (paper)"] + engines, t1, note),
            Table("Table 3 measured here (HxW; BiSeNet at the paper's 1536x768)",
                  ["Model", "HxW", "mIoU test (paper)", "FPS 1080Ti (paper)", "FPS Titan X caffe (paper)"]
                  + engines, t3, note),
            Table("Table 4 measured here (sizes WxH, as the paper)", ["Model", "size", "Titan X ms / FPS (paper)"]
                  + engines, t4, note),
            Table("Table 5 measured here (sizes WxH, as the paper)", ["Model", "size", "TX2 ms / FPS (paper)"]
                  + engines, t5, note),
            Table("Fig. 1 measured here (each net at the size of its published FPS, HxW)",
                  ["Model", "HxW", "mIoU test (paper)", "FPS (paper)", "device (paper)"] + engines, f1,
                  note + " Sources of the published figures: tools/report/fig1_points.yaml.")]
