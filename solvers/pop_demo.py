"""A real POP search on this machine's CPU: handwritten digits, pycaffe training, Caffe LUT.

``make pop-demo`` runs, in ``build/pop-demo/``:

1. ``python -m solvers.pop_demo prepare DIR`` — the data (scikit-learn's digits at 32x32 in
   LMDBs), the training task of each candidate (``task.yaml``: iterations, batch, poly
   learning rate; read by :class:`solvers.pop_evaluator.CaffeEvaluator` through
   ``$DFSEG_POP_TASK``) and the search space (``space.yaml``): a DF-style space scaled to
   the data — basic blocks, 1-2 blocks per stage, widths {64,128} / {128,256} / {256,512},
   input 32x32, 10 classes;
2. ``pop lut build`` — the Caffe latency look-up table of this machine for that space;
3. ``pop search`` (plus one ``pop worker``) — Algorithm 1 with real training as evaluator;
4. ``pop report`` — boundary plot and HTML report;
5. ``python -m solvers.pop_demo order-check RUNS --out DIR`` — how often the partial-order
   assumption held among the trained pairs (the paper's Fig. 3b): for every trained pair
   x ≺ y (``pop.order.precedes``), did Acc(x) <= Acc(y)?  Writes ``partial_order.json`` and
   ``partial_order.png``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import yaml

from pop.order import precedes
from prototxt_gen.encoding import parse_backbone
from tools.common.atomic import atomic_save_figure, atomic_write_text

from .digits import prepare as prepare_digits

SPACE = {
    "stages": [
        {"block": "basic", "widths": [64, 128], "min_depth": 1, "max_depth": 2},
        {"block": "basic", "widths": [128, 256], "min_depth": 1, "max_depth": 2},
        {"block": "basic", "widths": [256, 512], "min_depth": 1, "max_depth": 2},
    ],
    "input_size": [32, 32],
    "num_classes": 10,
    "latency_ms": [0.0, 1000.0],   # every architecture of this small space is admitted
}

TASK = {
    "iterations": 300,            # 7.4 epochs of the 1,300 training images
    "batch_size": 32,
    "val_batch_size": 71,          # 497 validation images = 7 batches of 71: each seen once
    "base_lr": 0.05,
    "lr_policy": "poly",
    "power": 2.0,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "mean": [64.0],
    "scale": 0.0078125,
    "rand_h": [28, 36],            # random scaling and stretching around the 32x32 input
    "rand_w": [28, 36],
    "threads": 1,
    "seed": 0,
}


def prepare(out: str | Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = prepare_digits(out / "digits", size=32, val=497)
    task = dict(TASK, train_db=d["train_db"], val_db=d["val_db"], val_size=d["val_size"],
                num_classes=d["num_classes"], input_size=d["input_size"])
    atomic_write_text(out / "task.yaml", yaml.safe_dump(task, sort_keys=False))
    atomic_write_text(out / "space.yaml", yaml.safe_dump(SPACE, sort_keys=False))
    return {"task": str(out / "task.yaml"), "space": str(out / "space.yaml"), **d}


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
    nets = {e: parse_backbone(e) for e in results}
    pairs = []
    for a, b in itertools.permutations(results, 2):
        if precedes(nets[a], nets[b]):
            pairs.append({"smaller": a, "larger": b, "delta_acc": results[b] - results[a]})
    held = sum(p["delta_acc"] >= 0 for p in pairs)
    deltas = [p["delta_acc"] for p in pairs]
    return {"trained": len(results), "comparable_pairs": len(pairs), "held": held,
            "held_fraction": held / len(pairs) if pairs else None,
            "min_delta_acc": min(deltas) if deltas else None,
            "violations": sorted((p for p in pairs if p["delta_acc"] < 0), key=lambda p: p["delta_acc"]),
            "pairs": pairs}


def plot_order_check(report: dict, out: Path) -> Path:
    # matplotlib (~1 s with pyplot) only for the plot, not for `prepare`
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    deltas = [100 * p["delta_acc"] for p in report["pairs"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    if deltas:
        ax.hist(deltas, bins=30, color="tab:blue", alpha=0.8)
    ax.axvline(0, color="k", lw=1)
    frac = report["held_fraction"]
    ax.set_title(f"partial-order assumption held for {report['held']}/{report['comparable_pairs']} "
                 f"pairs ({'n/a' if frac is None else f'{100 * frac:.1f} %'})", fontsize=10)
    ax.set_xlabel("ΔAcc = Acc(larger) − Acc(smaller) [%]  over trained pairs smaller ≺ larger")
    ax.set_ylabel("pairs")
    fig.tight_layout()
    path = out / "partial_order.png"
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solvers.pop_demo", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="digits LMDBs, task.yaml and space.yaml")
    p.add_argument("out")
    c = sub.add_parser("order-check", help="how often Acc(x) <= Acc(y) held for trained x ≺ y (Fig. 3b)")
    c.add_argument("runs", help="the search's --workdir")
    c.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        print(json.dumps(prepare(args.out), indent=1))
        return 0
    results = trained_results(args.runs)
    if not results:
        print(f"error: {args.runs}: no trained candidates (accuracy.json) found", file=sys.stderr)
        return 2
    report = order_check(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "partial_order.json", json.dumps(report, indent=1))
    png = plot_order_check(report, out)
    frac = report["held_fraction"]
    print(f"trained {report['trained']}; comparable pairs {report['comparable_pairs']}; assumption held for "
          f"{report['held']} ({'n/a' if frac is None else f'{100 * frac:.1f} %'}); "
          f"lowest ΔAcc {report['min_delta_acc']}; {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
