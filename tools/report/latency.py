"""The latency table and plot of one engine over models and sizes (``make bench-ort``: the
report tools.engines.latency.onnxruntime_latency writes)."""
from __future__ import annotations

from pathlib import Path

from dfseg.base.atomic import atomic_save_figure
from dfseg.base.sizes import format_hxw

__all__ = ["format_table", "plot"]


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
