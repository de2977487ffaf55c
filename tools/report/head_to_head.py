"""The head-to-head bench's reports (``make bench``, ``make df1seg``): from the ``results.json``
data (tools.engines.head_to_head.summary) the Markdown table with the DF1-Seg/ICNet ratio per
engine and the FPS plot beside the paper's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dfseg.base.atomic import atomic_save_figure, atomic_write_group
from dfseg.base.sizes import format_hxw

from .paper import TABLE4_SIZES

__all__ = ["markdown", "plot", "write_reports"]


def _num(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def _run_line(r: dict) -> str:
    size = format_hxw(r["input_hw"])
    if r.get("paper_hw") and tuple(r["paper_hw"]) != tuple(r["input_hw"]):
        size += f" (paper {format_hxw(r['paper_hw'])})"
    ci = f"{r['ci95_ms'][0]:.1f}–{r['ci95_ms'][1]:.1f}" if r.get("ci95_ms") else "–"
    note = r["error"] or ("busy" if r.get("busy") else "")
    return (f"| {r['paper_name']} | {r['engine']} | {size} | {r['iterations']} | "
            f"{_num(r['median_ms'])} | {ci} | {_num(r['min_ms'])} | {_num(r['fps'])} | "
            f"{_num(r['paper_ms'])} | {_num(r['paper_fps'], '{:.1f}')} | {note} |")


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [f"# Head to head ({m['cpu']}, {m['logical_cpus']} logical CPUs, {data['threads']} thread(s); "
             f"paper: Titan X Maxwell)", "",
             "| model | engine | input (HxW) | passes | median ms | 95 % CI ms | min ms | FPS | paper ms | paper FPS | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_run_line(r) for r in data["runs"]]
    q = data["df1seg_over_icnet"]
    parts = [f"{e} {_num(q.get(e), '{:.3f}')}" + (f" [{q[e + '_ci95'][0]:.3f}, {q[e + '_ci95'][1]:.3f}]"
                                                  if q.get(e + "_ci95") else "")
             for e in data["protocol"] if e in q]
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


def _bars(left, right, runs: list[dict]) -> tuple[list[str], int]:
    """Left: measured FPS per engine; right: FPS relative to ICNet, measured and paper."""
    labels = list(dict.fromkeys(r["paper_name"] for r in runs))
    engines = sorted({r["engine"] for r in runs})
    x = np.arange(len(labels))
    width = 0.8 / (len(engines) + 1)
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
    for ax in (left, right):
        ax.set_xticks(x + width * (len(engines) - 1) / 2, labels, rotation=20)
    return labels, len(engines)


def plot(data: dict, path: Path) -> None:
    """The head-to-head size group (not Table 4's sizes): measured FPS, and FPS relative to ICNet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    table4 = set(TABLE4_SIZES.values())
    runs = [r for r in data["runs"] if r["fps"] and tuple(r["paper_hw"] or r["input_hw"]) not in table4]
    if not runs:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    _bars(left, right, runs)
    for ax, title in ((left, "measured FPS (median), full resolution"), (right, "FPS relative to ICNet")):
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    right.axhline(1.0, color="grey", linewidth=0.8)
    sizes = "; ".join(dict.fromkeys(f"{r['paper_name']} {format_hxw(r['input_hw'])}" if r["paper_name"] == "ICNet"
                                    else format_hxw(r["input_hw"]) for r in runs))
    fig.suptitle(f"{data['machine']['cpu']}, {data['threads']} thread(s) ({sizes})")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_reports(data: dict, out: Path) -> None:
    """OUT/results.json and OUT/results.md (together or neither), then OUT/fps.png."""
    atomic_write_group({out / "results.json": json.dumps(data, indent=2),
                        out / "results.md": markdown(data)})
    plot(data, out / "fps.png")
