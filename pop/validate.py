"""``pop lut validate``: is Lat(x) = stem + Σ blocks + head a good estimate?  (Fig. 3a)

N architectures drawn uniformly from Ŝ are profiled as whole networks on the same backend
the table was built with; the scatter of measured against estimated latency is written as a
PNG together with the median |error| and the share of networks within ±10 %.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from prototxt_gen import caffe_pb2
from prototxt_gen import layers as L
from prototxt_gen.backbone import OUTPUT_STRIDE, backbone as build_backbone, feature_size
from prototxt_gen.netbuilder import NetBuilder
from tools.common.atomic import atomic_save_figure, atomic_write_text



def whole_net(backbone, input_size: tuple[int, int], num_classes: int) -> caffe_pb2.NetParameter:
    """Input -> stem -> stages -> global average pool -> fc: exactly the sum of the LUT's nets."""
    nb = NetBuilder(merge_bn=True)
    nb.add(L.input_layer((1, 3, *input_size)))
    x = build_backbone(nb, backbone)[-1]
    x = nb.add(L.ave_pooling("pool5", x, "pool5", kernel=feature_size(input_size, OUTPUT_STRIDE), stride=(1, 1)))
    nb.add(L.inner_product("fc", x, "fc", num_classes))
    nb.net.name = str(backbone)
    return nb.net


def sample_rows(space, n: int, seed: int, exclude=()) -> list[int]:
    """n architectures of Ŝ drawn uniformly (without those in `exclude`)."""
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(space.size), np.asarray(list(exclude), dtype=np.int64))
    return [int(i) for i in rng.choice(pool, size=min(n, pool.size), replace=False)]


def measure_whole(space, backend, rows: list[int], progress: bool = True, what: str = "whole networks") -> list[float]:
    """ms of the architectures `rows`, timed together in interleaved rounds."""
    cfg = space.config
    nets = {str(i): whole_net(space.backbone(i), cfg.input_size, cfg.num_classes) for i in rows}
    with tqdm(total=len(nets) * backend.protocol.rounds, desc=f"profiling {what}", unit="net",
              disable=not progress) as bar:
        times = backend.time_nets(nets, progress=lambda _: bar.update(1))
    return [times[str(i)] for i in rows]


def _store_calibration(space, table, rows: list[int], measured: list[float]) -> dict:
    """scale = median(measured whole net / the table's raw estimate) over `rows`."""
    ratios = [m / float(space.latency[i]) for i, m in zip(rows, measured)]
    table.meta["calibration"] = {"scale": float(np.median(ratios)), "nets": len(rows),
                                 "ratios": [round(r, 4) for r in ratios], "rows": rows,
                                 "encodings": [space.encoding(i) for i in rows]}
    return table.meta["calibration"]


def calibrate(space, table, backend, n: int = 10, seed: int = 1, progress: bool = True) -> dict:
    """Time n whole nets and store the median of measured / estimated (Σ parts) as the table's
    ``meta["calibration"] = {"scale", "nets", "ratios", "rows", "encodings"}``: whole nets run
    slower or faster than the sum of their parts timed alone by a factor that depends on the
    machine's state (docs/measurement.md), so calibrate right after a build, on the same
    machine state.  `space` must be enumerated from the uncalibrated table."""
    if table.scale != 1.0:
        raise ValueError("calibrate needs the raw estimates: the table is calibrated already")
    rows = sample_rows(space, n, seed)
    measured = measure_whole(space, backend, rows, progress, what="calibration networks")
    return _store_calibration(space, table, rows, measured)


def validate(space, table, backend, n: int = 20, seed: int = 0, out_dir: Path = Path("pop_lut_validate"),
             progress: bool = True, calibrate_on: int = 0) -> dict:
    """Time n whole nets (not those the table was calibrated on) and compare with the table's
    estimates; writes lut_validation.json and .png in `out_dir`.  With `calibrate_on` = c > 0
    (an uncalibrated table), c other nets are timed in the same interleaved rounds as the n,
    the table is calibrated on those c alone, and the n are compared with the calibrated
    estimates: calibration and check then see the same machine state."""
    # matplotlib (~1 s with pyplot) only for the plot, not for every import of this module
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = space.config
    cal_rows = sample_rows(space, calibrate_on, seed + 1) if calibrate_on else []
    if cal_rows and table.scale != 1.0:
        raise ValueError("validate(calibrate_on=...) needs an uncalibrated table")
    calibration = table.meta.get("calibration", {})
    rows = sample_rows(space, n, seed, exclude=set(calibration.get("rows", ())) | set(cal_rows))
    measured = measure_whole(space, backend, cal_rows + rows, progress)
    scale = _store_calibration(space, table, cal_rows, measured[:len(cal_rows)])["scale"] if cal_rows else 1.0
    measured = measured[len(cal_rows):]
    records = [{"encoding": space.encoding(i), "estimated_ms": float(space.latency[i]) * scale,
                "measured_ms": m} for i, m in zip(rows, measured)]
    est = np.array([r["estimated_ms"] for r in records])
    meas = np.array([r["measured_ms"] for r in records])
    rel = (est - meas) / meas
    summary = {"n": len(records), "median_abs_error_pct": float(np.median(np.abs(rel)) * 100),
               "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
               "mean_error_pct": float(np.mean(rel) * 100), "sd_error_pct": float(np.std(rel) * 100),
               "calibration_scale": table.scale,
               "calibration_nets": table.meta.get("calibration", {}).get("nets", 0),
               "backend": backend.name, "platform": table.platform,
               "protocol": {"warmup": backend.protocol.warmup, "rounds": backend.protocol.rounds,
                            "repeats": backend.protocol.repeats, "clock": backend.protocol.clock,
                            "statistic": "median over rounds of the fastest pass, caches flushed"},
               "input_size": list(cfg.input_size), "records": records}

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
    ax.set_title(f"LUT validation ({backend.name}, {cfg.input_size[0]}x{cfg.input_size[1]}, n={len(records)}): "
                 f"{summary['within_10pct'] * 100:.0f} % within ±10 %, median |error| "
                 f"{summary['median_abs_error_pct']:.1f} %", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    plot = out_dir / "lut_validation.png"
    atomic_save_figure(fig, plot, dpi=120)
    plt.close(fig)
    summary["plot"] = str(plot)
    atomic_write_text(out_dir / "lut_validation.json", json.dumps(summary, indent=1) + "\n")
    return summary
