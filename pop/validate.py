"""``pop lut validate``: is the table's estimate of a whole net right?  (Fig. 3a)

The model (docs/measurement.md, "LUT"): Lat(x) = scale x (Σ parts - (parts - 1) x overhead),
the parts being the stem, the blocks and the head as the table timed them alone.  Calibration
fits `scale` and `overhead` on a few whole nets spread over Ŝ's latency range (`calibrate`).
The check profiles N architectures drawn uniformly from Ŝ as whole networks on the same backend
the table was built with, `repeats` times and once more with a second process busy on another
core; the scatter of measured against estimated latency is written as a PNG together with the
median |error| and the share of networks within ±10 % of every run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from prototxt_gen import caffe_pb2
from prototxt_gen import layers as L
from prototxt_gen.backbone import OUTPUT_STRIDE, backbone as build_backbone, feature_size
from prototxt_gen.netbuilder import NetBuilder
from dfseg.base.atomic import atomic_save_figure, atomic_write_text
from tools.engines import busy_neighbour

from .estimate import estimate_backbone
from .lut import backbone_keys



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


def calibration_rows(space, n: int) -> list[int]:
    """n architectures spread evenly over Ŝ's latency range (Ŝ is sorted by latency): fitting
    a scale and a per-part cost needs small nets and large ones, which a uniform draw of ten
    may miss."""
    if n >= space.size:
        return list(range(space.size))
    return [int(i) for i in np.unique(np.round(np.linspace(0, space.size - 1, n)).astype(int))]


def measure_whole(space, backend, rows: list[int], progress: bool = True, what: str = "whole networks") -> list[float]:
    """ms of the architectures `rows`, timed together in interleaved rounds."""
    cfg = space.config
    nets = {str(i): whole_net(space.backbone(i), cfg.input_size, cfg.num_classes) for i in rows}
    with tqdm(total=len(nets) * backend.protocol.rounds, desc=f"profiling {what}", unit="net",
              disable=not progress) as bar:
        times = backend.time_nets(nets, progress=lambda _: bar.update(1))
    return [times[str(i)] for i in rows]


def _parts(space, rows) -> np.ndarray:
    """Number of LUT parts (stem, blocks, head) of each architecture."""
    return np.array([len(backbone_keys(space.config, space.backbone(i))) for i in rows], float)


def fit_calibration(space, table, rows: list[int], measured: list[float]) -> dict:
    """scale and per-part overhead of Lat = scale x (Σ parts - (parts - 1) x overhead), fitted
    to the measured whole nets `rows` by least squares on relative errors.  `space` must be
    enumerated from the uncalibrated table (its latency is Σ parts - (parts - 1) x the call
    overhead).  Fewer than three nets, or nets of one depth, fit the scale alone."""
    raw = np.asarray(space.latency[rows], float)
    meas = np.asarray(measured, float)
    parts = _parts(space, rows)
    sums = raw + (parts - 1) * table.call_overhead
    if len(rows) >= 3 and len(np.unique(parts)) >= 2:
        weights, *_ = np.linalg.lstsq(np.c_[sums, 1 - parts] / meas[:, None], np.ones(len(rows)),
                                      rcond=None)
        scale, overhead = float(weights[0]), float(weights[1] / weights[0])
    else:
        scale, overhead = float(np.median(meas / raw)), table.call_overhead
    fitted = scale * (sums - (parts - 1) * overhead)
    return {"scale": scale, "part_overhead_ms": overhead, "nets": len(rows),
            "fit_median_abs_error_pct": float(np.median(np.abs(fitted / meas - 1)) * 100),
            "ratios": [round(float(r), 4) for r in meas / raw], "rows": rows,
            "encodings": [space.encoding(i) for i in rows]}


def calibrated_estimates(space, table, rows: list[int], calibration: dict) -> np.ndarray:
    """What the table estimates for `rows` once `calibration` is stored in it (the space may
    have been enumerated from the uncalibrated table)."""
    stored = table.meta.get("calibration")
    table.meta["calibration"] = calibration
    try:
        return np.array([estimate_backbone(space.config, table, space.backbone(i)) for i in rows])
    finally:
        if stored is None:
            table.meta.pop("calibration")
        else:
            table.meta["calibration"] = stored


def calibrate(space, table, backend, n: int = 10, progress: bool = True) -> dict:
    """Time n whole nets spread over Ŝ and store the fitted model as the table's
    ``meta["calibration"] = {"scale", "part_overhead_ms", "nets", ...}``: whole nets run
    faster than the sum of their parts timed alone, by a per-part cost and a factor that
    depend on the engine and the machine (docs/measurement.md), so calibrate right after a
    build, on the same machine state.  `space` must be enumerated from the uncalibrated table."""
    if "calibration" in table.meta:
        raise ValueError("calibrate needs the raw estimates: the table is calibrated already")
    rows = calibration_rows(space, n)
    measured = measure_whole(space, backend, rows, progress, what="calibration networks")
    table.meta["calibration"] = fit_calibration(space, table, rows, measured)
    return table.meta["calibration"]


def _errors(estimated: np.ndarray, measured: np.ndarray) -> dict:
    rel = (estimated - measured) / measured
    return {"n": len(rel), "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "median_abs_error_pct": float(np.median(np.abs(rel)) * 100),
            "mean_error_pct": float(np.mean(rel) * 100), "sd_error_pct": float(np.std(rel) * 100)}


def check_once(space, table, backend, rows: list[int], cal_rows: list[int],
               progress: bool = True) -> dict:
    """One check: `cal_rows` (if any: the table is then calibrated on them) and `rows` timed in
    the same interleaved rounds, the estimates of `rows` against their measurement."""
    measured = measure_whole(space, backend, cal_rows + rows, progress)
    calibration = None
    if cal_rows:
        calibration = fit_calibration(space, table, cal_rows, measured[:len(cal_rows)])
        estimated = calibrated_estimates(space, table, rows, calibration)
    else:
        estimated = np.asarray(space.latency[rows], float)
    meas = np.asarray(measured[len(cal_rows):], float)
    return {**_errors(estimated, meas), "calibration": calibration,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "records": [{"encoding": space.encoding(i), "estimated_ms": float(e), "measured_ms": float(m)}
                        for i, e, m in zip(rows, estimated, meas)]}


def _short(run: dict) -> dict:
    """A run without its records, its calibration as two numbers."""
    out = {k: v for k, v in run.items() if k not in ("records", "calibration")}
    if run["calibration"]:
        out["calibration"] = {k: run["calibration"][k] for k in ("scale", "part_overhead_ms")}
    return out


def validate(space, table, backend, n: int = 20, seed: int = 0, out_dir: Path = Path("pop_lut_validate"),
             progress: bool = True, calibrate_on: int = 0, repeats: int = 1, busy: bool = False) -> dict:
    """Time n whole nets (not those the table was calibrated on) and compare with the table's
    estimates, `repeats` times, then once more with a second process busy on another core
    (`busy`); writes lut_validation.json and .png in `out_dir`.  With `calibrate_on` = c > 0
    (an uncalibrated table), c other nets spread over Ŝ are timed in the same interleaved
    rounds as the n in every run and the table is calibrated on them (the first run's
    calibration is kept): calibration and check then see the same machine state.  The
    summary's top-level figures are the first run's; "repeats", "busy" and "worst" hold the
    others."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = space.config
    if calibrate_on and "calibration" in table.meta:
        raise ValueError("validate(calibrate_on=...) needs an uncalibrated table")
    cal_rows = calibration_rows(space, calibrate_on) if calibrate_on else []
    calibrated_on = set(table.meta.get("calibration", {}).get("rows", ())) | set(cal_rows)
    rows = sample_rows(space, n, seed, exclude=calibrated_on)
    runs = [check_once(space, table, backend, rows, cal_rows, progress) for _ in range(max(repeats, 1))]
    busy_run = None
    if busy:
        with busy_neighbour():
            busy_run = check_once(space, table, backend, rows, cal_rows, progress)
    if cal_rows:
        table.meta["calibration"] = runs[0]["calibration"]
    every = runs + ([busy_run] if busy_run else [])
    summary = {**{k: runs[0][k] for k in ("n", "within_10pct", "median_abs_error_pct", "mean_error_pct",
                                           "sd_error_pct")},
               "calibration_scale": table.scale, "part_overhead_ms": table.part_overhead,
               "calibration_nets": table.meta.get("calibration", {}).get("nets", 0),
               "repeats": [_short(r) for r in runs], "busy": _short(busy_run) if busy_run else None,
               "worst": {"within_10pct": min(r["within_10pct"] for r in every),
                         "median_abs_error_pct": max(r["median_abs_error_pct"] for r in every)},
               "backend": backend.name, "platform": table.platform,
               "protocol": {"warmup": backend.protocol.warmup, "rounds": backend.protocol.rounds,
                            "repeats": backend.protocol.repeats, "clock": backend.protocol.clock,
                            "statistic": "median over rounds of the fastest pass, caches flushed"},
               "input_size": list(cfg.input_size), "records": runs[0]["records"],
               "busy_records": busy_run["records"] if busy_run else None}
    summary["plot"] = str(_plot(runs, busy_run, backend.name, cfg.input_size, out_dir / "lut_validation.png"))
    atomic_write_text(out_dir / "lut_validation.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _plot(runs: list[dict], busy_run: dict | None, backend: str, size, path: Path) -> Path:
    """Measured against estimated latency of every run (the busy one in red)."""
    # matplotlib (~1 s with pyplot) only for the plot, not for every import of this module
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = [(f"run {i + 1}: {r['within_10pct'] * 100:.0f} %, median {r['median_abs_error_pct']:.1f} %",
                 r, f"C{i}") for i, r in enumerate(runs)]
    if busy_run:
        labelled.append((f"busy neighbour: {busy_run['within_10pct'] * 100:.0f} %, median "
                         f"{busy_run['median_abs_error_pct']:.1f} %", busy_run, "tab:red"))
    fig, ax = plt.subplots(figsize=(5, 5))
    hi = max(max(x["estimated_ms"], x["measured_ms"]) for _, r, _ in labelled for x in r["records"]) * 1.1
    xs = np.linspace(0, hi, 10)
    ax.plot(xs, xs, "k-", lw=1, label="estimate = measurement")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.85", label="±10 %")
    for label, r, color in labelled:
        ax.scatter([x["measured_ms"] for x in r["records"]], [x["estimated_ms"] for x in r["records"]],
                   s=10, color=color, alpha=0.7, zorder=3, label=label)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("estimated: scale x (Σ parts - (parts - 1) x overhead) (ms)")
    ax.set_title(f"LUT check ({backend}, {size[0]}x{size[1]}, n={runs[0]['n']} whole nets): "
                 f"share within ±10 %, median |error|", fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path
