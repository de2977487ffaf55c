"""The paper's Tables 1, 3, 4 and 5 and Fig. 1 with this machine's measurements
(bench/paper.json, written by `make bench-paper`) beside the paper's figures, and a Fig. 5-style
plot (latency against ImageNet top-1).  `python -m tools.tables --json` prints them under
"table1", "table3", "table4", "table5" and "fig1".

bench/paper.json's rows give per engine a timing record (tools.report.timings) or null; each
row here: {"model", "paper": {...}, "measured": {"caffe": ms, "opencv": ms, "onnxruntime": ms}
(the records' medians; null where not timed) or {} where the bench has no row, "errors":
{engine: why}}: every engine without a figure has its reason ("not built: ..." for a model the
registry does not have yet, "not measured: ..." where bench/paper.json lacks the row, or the
engine's own).  Table 3 and Fig. 1 rows also "hxw" (the size timed); Table 4 and 5 rows "size"
(WxH, as the paper writes it) and "hxw".
"""
from __future__ import annotations

import io
from pathlib import Path

from dfseg.base.errors import InputError
from dfseg.base.sizes import format_hxw
from dfseg.base.textfile import TextFileError, read_json

from .paper import TABLE4_SIZES as TABLE4_HW, TABLE5_SIZES as TABLE5_HW
from .paper_plan import FULL_HW, TABLE3_HW, is_built, not_built_reason, registry_name
from .timings import TimingSchemaError, checked_median

__all__ = ["ComparisonFormatError", "load_paper_bench", "comparison_tables", "plot_fig5", "ENGINES",
           "BENCH_TABLES"]

ENGINES = ("caffe", "opencv", "onnxruntime")
BENCH_TABLES = ("table1", "table3", "table4", "table5", "fig1")
TABLE4_SIZES = {name: format_hxw(hw) for name, hw in TABLE4_HW.items()}   # WxH -> "HxW"
TABLE5_SIZES = {name: format_hxw(hw) for name, hw in TABLE5_HW.items()}
NO_BENCH = "not measured: no bench/paper.json (`make bench-paper`)"
NO_ROW = "not measured: bench/paper.json has no row for it (`make bench-paper`)"
NO_ENGINE = "not measured on this engine (`make bench-paper` ran without it)"


class ComparisonFormatError(InputError, ValueError):
    pass


def load_paper_bench(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path, "paper bench result (JSON)")
    except TextFileError as exc:
        raise ComparisonFormatError(str(exc)) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(t, []), list) for t in BENCH_TABLES):
        raise ComparisonFormatError(f"{path}: expected {{{', '.join(f'{t!r}: [...]' for t in BENCH_TABLES)}}}")
    for table in BENCH_TABLES:
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


def _measured(row: dict | None, name: str, bench: dict | None) -> tuple[dict, dict]:
    """({engine: median ms or None}, {engine: why}) of one bench row: every engine without a
    figure gets a reason (the bench's, else why there is none)."""
    if row is None:
        why = not_built_reason(name) if not is_built(name) else NO_BENCH if bench is None else NO_ROW
        return {}, {e: why for e in ENGINES}
    records, errors = row.get("measured", {}), dict(row.get("errors", {}))
    measured = {e: None if records.get(e) is None else _median(records[e], f"{row.get('model')}.measured.{e}")
                for e in ENGINES}
    for e in ENGINES:
        if measured[e] is None and e not in errors:
            errors[e] = NO_ENGINE
    return measured, errors


def _index(bench: dict, table: str, size_key: str) -> dict:
    """{(generator name, size): row} of one bench table."""
    rows = {}
    for r in bench.get(table, []):
        size = r.get(size_key) if size_key == "paper_size" or not r.get("input_hw") \
            else format_hxw(tuple(r["input_hw"]))
        rows[(r.get("name") or registry_name(r["model"]), size)] = r
    return rows


def _table1(paper: dict, bench: dict | None) -> list[dict]:
    t1 = {k[0]: r for k, r in _index(bench or {}, "table1", "input_hw").items()}
    rows = []
    for p in paper.get("table1_tx2_backbones", []):
        name = registry_name(p["model"])
        measured, errors = _measured(t1.get(name), name, bench)
        rows.append({"model": p["model"], "hxw": "224x224",
                     "paper": {"top1": p.get("top1"), "latency_ms_tx2": p.get("latency_ms"), "flops": p.get("flops")},
                     "measured": measured, "errors": errors})
    return rows


def _table3(paper: dict, bench: dict | None) -> list[dict]:
    t3 = _index(bench or {}, "table3", "input_hw")
    rows = []
    for p in paper.get("table3_1080ti", []):
        name = registry_name(p["model"])
        hxw = format_hxw(TABLE3_HW.get(name, FULL_HW))
        measured, errors = _measured(t3.get((name, hxw)), name, bench)
        rows.append({"model": p["model"], "hxw": hxw,
                     "paper": {"miou_val": p.get("miou_val"), "miou_test": p.get("miou_test"),
                               "fps_1080ti": p.get("fps"), "fps_titanx_caffe": p.get("fps_caffe"),
                               "note": p.get("note")},
                     "measured": measured, "errors": errors})
    return rows


def _device_table(paper: dict, bench: dict | None, table: str, key: str, sizes: dict, device: str) -> list[dict]:
    """Table 4 (Titan X) or 5 (TX2): one row per model and size; the paper's ms / FPS (None
    where it prints none) beside the measured."""
    index = _index(bench or {}, table, "paper_size")
    rows = []
    for p in paper.get(key, []):
        name = registry_name(p["model"])
        for size, hxw in sizes.items():
            ms, fps = p.get(size) or (None, None)
            measured, errors = _measured(index.get((name, size)), name, bench)
            rows.append({"model": p["model"], "size": size, "hxw": hxw,
                         "paper": {f"ms_{device}": ms, f"fps_{device}": fps},
                         "measured": measured, "errors": errors})
    return rows


def _fig1(points: list[dict], bench: dict | None) -> list[dict]:
    index = _index(bench or {}, "fig1", "input_hw")
    rows = []
    for p in points:
        measured, errors = _measured(index.get((p["name"], format_hxw(p["hw"]))), p["name"], bench)
        rows.append({"model": p["model"], "name": p["name"], "hxw": format_hxw(p["hw"]),
                     "paper": {k: p.get(k) for k in ("miou_test", "fps", "device", "miou_source", "fps_source")},
                     "measured": measured, "errors": errors})
    return rows


def comparison_tables(paper: dict | None, bench: dict | None, fig1_points: list[dict] = ()) -> dict:
    paper = paper or {}
    return {"table1": _table1(paper, bench), "table3": _table3(paper, bench),
            "table4": _device_table(paper, bench, "table4", "table4_titanx", TABLE4_SIZES, "titanx"),
            "table5": _device_table(paper, bench, "table5", "table5_tx2", TABLE5_SIZES, "tx2"),
            "fig1": _fig1(list(fig1_points), bench)}


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
