"""The paper's Tables 1 and 4 with this machine's measurements (bench/paper.json, written by
`make bench-paper`) beside the paper's figures, and a Fig. 5-style plot (latency against
ImageNet top-1).  `python -m tools.tables` prints them under "table1" and "table4".

bench/paper.json's rows give per engine a timing record (tools.report.timings) or null; each
row here: {"model", "paper": {...}, "measured": {"caffe": ms, "opencv": ms, "onnxruntime": ms}
(the records' medians) or {} where not measured, "errors": {engine: why}}; Table 4 rows also
"size" (WxH, as the paper writes it) and "hxw".
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from dfseg.base.errors import InputError
from dfseg.base.sizes import format_hxw
from dfseg.base.textfile import TextFileError, read_json

from .paper import TABLE4_SIZES as TABLE4_HW
from .timings import TimingSchemaError, checked_median

__all__ = ["ComparisonFormatError", "load_paper_bench", "comparison_tables", "plot_fig5", "ENGINES"]

ENGINES = ("caffe", "opencv", "onnxruntime")
TABLE4_SIZES = {name: format_hxw(hw) for name, hw in TABLE4_HW.items()}   # WxH -> "HxW"


class ComparisonFormatError(InputError, ValueError):
    pass


def _key(name: str) -> str:
    """ShuffleNet_V2, ShuffleNet V2 and shufflenet-v2 are one model."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_paper_bench(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path, "paper bench result (JSON)")
    except TextFileError as exc:
        raise ComparisonFormatError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("table1", []), list) \
            or not isinstance(data.get("table4", []), list):
        raise ComparisonFormatError(f"{path}: expected {{\"table1\": [...], \"table4\": [...]}}")
    for table in ("table1", "table4"):
        for i, row in enumerate(data.get(table, [])):
            measured = row.get("measured", {}) if isinstance(row, dict) else None
            if not isinstance(measured, dict):
                raise ComparisonFormatError(f"{path}: {table}[{i}]: expected an object with a \"measured\" object")
            for engine, record in measured.items():
                if record is not None:   # null: the engine could not run the model
                    _median(record, f"{path}: {table}[{i}].measured.{engine}")
    return data


def _median(record, where: str) -> float:
    try:
        return checked_median(record, where)
    except TimingSchemaError as exc:
        raise ComparisonFormatError(str(exc)) from None


def _measured(row: dict | None) -> tuple[dict, dict]:
    """({engine: median ms or None}, {engine: why}) of one bench row."""
    if row is None:
        return {}, {}
    records = row.get("measured", {})
    return ({e: None if records.get(e) is None else _median(records[e], f"{row.get('model')}.measured.{e}")
             for e in ENGINES}, dict(row.get("errors", {})))


def comparison_tables(paper: dict | None, bench: dict | None) -> dict:
    paper, bench = paper or {}, bench or {}
    t1 = {_key(r["model"]): r for r in bench.get("table1", [])}
    t4 = {(_key(r["model"]), r.get("paper_size")): r for r in bench.get("table4", [])}
    table1 = []
    for p in paper.get("table1_tx2_backbones", []):
        measured, errors = _measured(t1.get(_key(p["model"])))
        table1.append({"model": p["model"], "hxw": "224x224",
                       "paper": {"top1": p.get("top1"), "latency_ms_tx2": p.get("latency_ms"),
                                 "flops": p.get("flops")},
                       "measured": measured, "errors": errors})
    table4 = []
    for p in paper.get("table4_titanx", []):
        for size, hxw in TABLE4_SIZES.items():
            if not p.get(size):
                continue
            ms, fps = p[size]
            measured, errors = _measured(t4.get((_key(p["model"]), size)))
            table4.append({"model": p["model"], "size": size, "hxw": hxw,
                           "paper": {"ms_titanx": ms, "fps_titanx": fps},
                           "measured": measured, "errors": errors})
    return {"table1": table1, "table4": table4}


def plot_fig5(table1: list[dict]) -> bytes:
    """Top-1 against latency, like the paper's Fig. 5: the paper's TX2 TensorRT latency and
    each engine's latency measured here (one panel each: their scales differ)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("paper: Jetson TX2 (TensorRT)", lambda r: r["paper"]["latency_ms_tx2"])]
    panels += [(f"here: {e}", lambda r, e=e: r["measured"].get(e)) for e in ENGINES]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), dpi=100)
    for ax, (title, latency) in zip(axes, panels):
        for r in table1:
            x, y = latency(r), r["paper"]["top1"]
            if x is None or y is None:
                continue
            ours = r["model"].startswith("DF")
            ax.scatter(x, y, color="tab:red" if ours else "tab:gray", zorder=3)
            ax.annotate(r["model"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("latency (ms, batch 1, 224x224)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ImageNet top-1 (%, paper)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
