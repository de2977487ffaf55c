"""Did the partial-order assumption hold among the trained models (the paper's Fig. 3b), and by
more than the run-to-run noise?

* :func:`seed_noise` — n trained models (spread over the accuracy ranking) trained again with
  another seed;
* :func:`order_check` — for every trained pair x ≺ y (``pop.order.precedes``), did
  Acc(x) <= Acc(y)?
* :func:`summary`, :func:`summary_markdown`, :func:`plot_order_check` — the accuracy spread,
  the seed noise, and how many pairs were inverted (or held) by more than the largest seed
  difference: ``demo_summary.json``, ``demo_summary.md`` and ``partial_order.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

from dfseg.base.atomic import atomic_save_figure, atomic_write_group, atomic_write_text
from dfseg.base.textfile import read_json
from pop.order import comparable_pairs_among
from prototxt_gen.encoding import parse_backbone

from .pop_evaluator import CaffeEvaluator, ClassificationTask

__all__ = ["SEED_NOISE_FILE", "order_check", "pick_for_noise", "plot_order_check", "seed_noise", "summary",
           "summary_markdown", "trained_results", "write_order_report", "write_seed_noise"]

SEED_NOISE_FILE = "seed_noise.json"


# --------------------------------------------------------------------------- seed noise
def pick_for_noise(results: dict[str, float], n: int) -> list[str]:
    """n trained models spread evenly over the accuracy ranking (lowest to highest)."""
    ranked = sorted(results, key=results.get)
    if n >= len(ranked):
        return ranked
    return [ranked[round(k * (len(ranked) - 1) / (n - 1))] for k in range(n)] if n > 1 else ranked[-1:]


def seed_noise(results: dict[str, float], task_file: str | Path, out: Path, n: int, seed: int,
               workers: int = 2) -> dict:
    """Train n of the trained models again with another seed (weights and data order)."""
    task = ClassificationTask.load(task_file).to_dict()
    chosen = pick_for_noise(results, n)
    again = CaffeEvaluator(dict(task, seed=seed)).evaluate_many(chosen, out / f"seed{seed}", workers=workers)
    models = [{"encoding": e, "accuracy": results[e], "accuracy_other_seed": a, "difference": a - results[e]}
              for e, a in zip(chosen, again)]
    diffs = [abs(m["difference"]) for m in models]
    return {"seed": seed, "first_seed": task["seed"], "models": models,
            "mean_abs_difference": sum(diffs) / len(diffs), "max_abs_difference": max(diffs)}


def write_seed_noise(results: dict[str, float], task_file: str | Path, out: Path, n: int, seed: int) -> dict:
    """:func:`seed_noise`, written to ``out/seed_noise.json`` (where the order check looks for it)."""
    noise = seed_noise(results, task_file, out, n, seed)
    atomic_write_text(out / SEED_NOISE_FILE, json.dumps(noise, indent=1))
    return noise


# --------------------------------------------------------------------------- Fig. 3b
def trained_results(runs: str | Path) -> dict[str, float]:
    """encoding -> accuracy of every finished candidate under ``runs`` (the evaluator's
    ``accuracy.json`` files)."""
    results = {}
    for path in sorted(Path(runs).rglob("accuracy.json")):
        record = json.loads(path.read_text())
        results[record["encoding"]] = float(record["accuracy"])
    return results


def order_check(results: dict[str, float]) -> dict:
    """For every comparable trained pair x ≺ y: ΔAcc = Acc(y) - Acc(x); the assumption
    holds when ΔAcc >= 0."""
    names = list(results)
    pairs = [{"smaller": names[i], "larger": names[j], "delta_acc": results[names[j]] - results[names[i]]}
             for i, j in comparable_pairs_among([parse_backbone(e) for e in names])]
    held = sum(p["delta_acc"] >= 0 for p in pairs)
    deltas = [p["delta_acc"] for p in pairs]
    return {"trained": len(results), "comparable_pairs": len(pairs), "held": held,
            "held_fraction": held / len(pairs) if pairs else None,
            "min_delta_acc": min(deltas) if deltas else None,
            "violations": sorted((p for p in pairs if p["delta_acc"] < 0), key=lambda p: p["delta_acc"]),
            "pairs": pairs}


def summary(results: dict[str, float], report: dict, noise: dict | None) -> dict:
    """What the demo shows: the accuracy spread, the seed noise and the order check against it."""
    import numpy as np
    acc = np.array(list(results.values()))
    out = {"trained": len(results),
           "accuracy_spread": {"min": float(acc.min()), "max": float(acc.max()), "range": float(np.ptp(acc)),
                               "std": float(acc.std())},
           "order_check": {"comparable_pairs": report["comparable_pairs"], "held": report["held"],
                           "inverted": report["comparable_pairs"] - report["held"],
                           "inverted_pairs_pct": (100.0 * (1 - report["held_fraction"])
                                                  if report["held_fraction"] is not None else None)}}
    if noise is not None:
        level = noise["max_abs_difference"]
        beyond = sum(p["delta_acc"] < -level for p in report["pairs"])
        out["seed_noise"] = {k: noise[k] for k in ("seed", "first_seed", "mean_abs_difference", "max_abs_difference")}
        out["seed_noise"]["models"] = len(noise["models"])
        out["spread_over_noise"] = float(np.ptp(acc)) / max(noise["mean_abs_difference"], 1e-9)
        out["order_check"]["inverted_beyond_noise"] = int(beyond)
        out["order_check"]["held_beyond_noise"] = int(sum(p["delta_acc"] > level for p in report["pairs"]))
    return out


def plot_order_check(report: dict, out: Path, demo: dict | None = None) -> Path:
    """The ΔAcc histogram of the trained pairs; with the demo summary, the seed-noise band
    (± the largest difference a second seed made) and the accuracy spread as well."""
    # matplotlib (~1 s with pyplot) only for the plot, not for `prepare`
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    deltas = [100 * p["delta_acc"] for p in report["pairs"]]
    fig, ax = plt.subplots(figsize=(7, 4.6))
    noise = (demo or {}).get("seed_noise")
    if noise:
        level = 100 * noise["max_abs_difference"]
        ax.axvspan(-level, level, color="0.85", zorder=0,
                   label=f"seed noise: ±{level:.2f} % (max over {noise['models']} models retrained; "
                         f"mean {100 * noise['mean_abs_difference']:.2f} %)")
    if deltas:
        ax.hist(deltas, bins=30, color="tab:blue", alpha=0.8, label="trained pairs")
    ax.axvline(0, color="k", lw=1)
    frac = report["held_fraction"]
    title = (f"partial-order assumption held for {report['held']}/{report['comparable_pairs']} "
             f"pairs ({'n/a' if frac is None else f'{100 * frac:.1f} %'})")
    if demo:
        spread = demo["accuracy_spread"]
        title += (f"\naccuracy of {demo['trained']} trained models {100 * spread['min']:.1f}–"
                  f"{100 * spread['max']:.1f} % (range {100 * spread['range']:.1f} %)")
        if noise:
            oc = demo["order_check"]
            title += (f"\npairs beyond the seed noise: {oc['inverted_beyond_noise']} inverted, "
                      f"{oc['held_beyond_noise']} held")
    ax.set_title(title, fontsize=9)
    if noise or deltas:
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)   # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("ΔAcc = Acc(larger) − Acc(smaller) [%]  over trained pairs smaller ≺ larger")
    ax.set_ylabel("pairs")
    fig.tight_layout()
    path = out / "partial_order.png"
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def summary_markdown(demo: dict) -> str:
    """The demo's result as a table a person reads (``demo_summary.md``)."""
    spread, oc = demo["accuracy_spread"], demo["order_check"]
    noise = demo.get("seed_noise")
    rows = [("trained models", f"{demo['trained']}"),
            ("accuracy spread", f"{100 * spread['min']:.2f}–{100 * spread['max']:.2f} % "
                                f"(range {100 * spread['range']:.2f} %, sd {100 * spread['std']:.2f} %)")]
    if noise:
        rows += [("seed noise", f"mean \\|ΔAcc\\| {100 * noise['mean_abs_difference']:.2f} %, max "
                                f"{100 * noise['max_abs_difference']:.2f} % ({noise['models']} models, seed "
                                f"{noise['first_seed']} → {noise['seed']})"),
                 ("spread / mean seed noise", f"{demo['spread_over_noise']:.1f}")]
    pct = oc["inverted_pairs_pct"]
    rows.append(("order check (Fig. 3b)", f"held for {oc['held']} / {oc['comparable_pairs']} comparable pairs; "
                                          f"{oc['inverted']} inverted ({'n/a' if pct is None else f'{pct:.1f} %'})"))
    if noise:
        rows.append(("beyond the seed noise", f"{oc['inverted_beyond_noise']} pairs inverted, "
                                              f"{oc['held_beyond_noise']} held"))
    lines = ["# POP demo: accuracy spread, seed noise and the order check", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines + ["", "![ΔAcc over trained pairs](partial_order.png)", ""])


def write_order_report(results: dict[str, float], out: Path) -> tuple[dict, dict, Path]:
    """The order check of ``results`` against the seed noise in ``out`` (when measured):
    ``partial_order.json``, ``demo_summary.json``, ``demo_summary.md`` and ``partial_order.png``
    in ``out``; returns (order check, summary, plot path)."""
    report = order_check(results)
    noise_file = out / SEED_NOISE_FILE
    demo = summary(results, report, read_json(noise_file, "seed noise (JSON)") if noise_file.is_file() else None)
    png = plot_order_check(report, out, demo)
    atomic_write_group({out / "partial_order.json": json.dumps(report, indent=1),
                        out / "demo_summary.json": json.dumps(demo, indent=1),
                        out / "demo_summary.md": summary_markdown(demo)})
    return report, demo, png
