"""``pop lut validate``: is Lat(x) = stem + Σ blocks + head a good estimate?  (Fig. 3a)

N architectures drawn uniformly from Ŝ are profiled as whole networks on the same backend
the table was built with; the scatter of measured against estimated latency is written as a
PNG together with the median |error| and the share of networks within ±10 %.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prototxt_gen import caffe_pb2
from tools.common.atomic import atomic_save_figure, atomic_write_text


def whole_net(backbone, input_size: tuple[int, int], num_classes: int) -> caffe_pb2.NetParameter:
    """Input -> stem -> stages -> global average pool -> fc: exactly the sum of the LUT's nets."""
    from prototxt_gen import layers as L
    from prototxt_gen.backbone import OUTPUT_STRIDE, backbone as build_backbone, feature_size
    from prototxt_gen.netbuilder import NetBuilder

    nb = NetBuilder(merge_bn=True)
    nb.add(L.input_layer((1, 3, *input_size)))
    x = build_backbone(nb, backbone)[-1]
    x = nb.add(L.ave_pooling("pool5", x, "pool5", kernel=feature_size(input_size, OUTPUT_STRIDE), stride=(1, 1)))
    nb.add(L.inner_product("fc", x, "fc", num_classes))
    nb.net.name = str(backbone)
    return nb.net


def validate(space, table, backend, n: int = 20, seed: int = 0, out_dir: Path = Path("pop_lut_validate"),
             progress: bool = True) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = rng.choice(space.size, size=min(n, space.size), replace=False)
    cfg = space.config
    records = []
    for i in tqdm(rows, desc="profiling whole networks", unit="net", disable=not progress):
        measured = backend.time_net(whole_net(space.backbone(int(i)), cfg.input_size, cfg.num_classes))
        records.append({"encoding": space.encoding(int(i)), "estimated_ms": float(space.latency[i]),
                        "measured_ms": float(measured)})
    est = np.array([r["estimated_ms"] for r in records])
    meas = np.array([r["measured_ms"] for r in records])
    rel = (est - meas) / meas
    summary = {"n": len(records), "median_abs_error_pct": float(np.median(np.abs(rel)) * 100),
               "within_10pct": float(np.mean(np.abs(rel) <= 0.10)), "backend": backend.name,
               "platform": table.platform, "input_size": list(cfg.input_size), "records": records}

    fig, ax = plt.subplots(figsize=(5, 5))
    hi = float(max(est.max(), meas.max())) * 1.1
    xs = np.linspace(0, hi, 10)
    ax.plot(xs, xs, "k-", lw=1, label="estimate = measurement")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.85", label="±10 %")
    ax.scatter(meas, est, s=14, color="tab:blue", zorder=3)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("estimated latency: stem + Σ blocks + head (ms)")
    ax.set_title(f"LUT validation ({backend.name}, {cfg.input_size[0]}x{cfg.input_size[1]}): "
                 f"{summary['within_10pct'] * 100:.0f} % within ±10 %", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    plot = out_dir / "lut_validation.png"
    atomic_save_figure(fig, plot, dpi=120)
    plt.close(fig)
    summary["plot"] = str(plot)
    atomic_write_text(out_dir / "lut_validation.json", json.dumps(summary, indent=1) + "\n")
    return summary
