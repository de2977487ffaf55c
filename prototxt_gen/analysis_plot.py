"""A picture of a :class:`~prototxt_gen.analysis.NetAnalysis`: where the multiply-
accumulates are spent and how Caffe's "Memory required for data" builds up, layer by layer."""
from __future__ import annotations

from pathlib import Path

from .analysis import NetAnalysis
from dfseg.base.atomic import atomic_save_figure


def plot_analysis(result: NetAnalysis, path: str | Path, label: str | None = None) -> Path:
    """Write a PNG: per-layer GMACs above, Caffe's running data memory below."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    path = Path(path)
    index = list(range(len(result.layers)))
    macs = [layer.macs / 1e9 for layer in result.layers]
    memory = [layer.memory_bytes / 2**20 for layer in result.layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    top.bar(index, macs, width=1.0, color="tab:blue")
    top.set_ylabel("GMACs per layer")
    top.set_title(f"{label or result.name or 'net'} ({result.phase}): {result.macs / 1e9:.2f} GMACs, "
                  f"{result.params / 1e6:.2f} M params, {result.memory_bytes / 2**20:.0f} MiB data")
    bottom.plot(index, memory, color="tab:red")
    bottom.set_ylabel("data memory, running (MiB)")
    bottom.set_xlabel("layer (Caffe's order, inserted Splits included)")
    # Label the heaviest layers so the picture names its hot spots.
    heaviest = sorted(index, key=lambda i: macs[i], reverse=True)[:5]
    for i in heaviest:
        if macs[i] > 0:
            top.annotate(result.layers[i].name, (i, macs[i]), fontsize=7, rotation=30,
                         xytext=(2, 2), textcoords="offset points")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
