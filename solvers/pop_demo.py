"""A real POP search on this machine's CPU: handwritten digits, pycaffe training, Caffe LUT.

``make pop-demo`` runs, in ``build/pop-demo/``:

1. ``python -m solvers.pop_demo prepare DIR`` — the data (scikit-learn's digits at 32x32 in
   LMDBs, every scan in random affine poses), the training task of each candidate
   (``task.yaml``: iterations, batch, poly learning rate; read by
   :class:`solvers.pop_evaluator.CaffeEvaluator` through ``$DFSEG_POP_TASK``) and the search
   space (``space.yaml``): a DF-style space scaled to the data — basic blocks, 1-2 blocks per
   stage, widths {64,128} / {128,256} / {256,512}, input 32x32, 10 classes
   (:mod:`solvers.pop_demo_setup`);
2. ``pop lut build`` — the Caffe latency look-up table of this machine for that space;
3. ``pop search`` (plus one ``pop worker``) — Algorithm 1 with real training as evaluator;
4. ``pop report`` — boundary plot and HTML report;
5. ``python -m solvers.pop_demo seed-noise RUNS --task T --out DIR`` — the run-to-run noise:
   4 trained models (spread over the accuracy ranking) trained again with another seed;
6. ``python -m solvers.pop_demo order-check RUNS --out DIR`` — how often the partial-order
   assumption held among the trained pairs (the paper's Fig. 3b): for every trained pair
   x ≺ y (``pop.order.precedes``), did Acc(x) <= Acc(y)?  Writes ``partial_order.json``,
   ``partial_order.png`` (the ΔAcc histogram over the seed-noise band), ``demo_summary.json``
   and ``demo_summary.md``: the accuracy spread, the seed noise, and how many pairs were
   inverted (or held) by more than the largest seed difference (:mod:`solvers.order_check`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.cli import CliError, run_cli

from .order_check import trained_results, write_order_report, write_seed_noise
from .pop_demo_setup import prepare


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="digits LMDBs, task.yaml and space.yaml")
    p.add_argument("out")
    c = sub.add_parser("order-check", help="how often Acc(x) <= Acc(y) held for trained x ≺ y (Fig. 3b), "
                       "against the seed noise when OUT/seed_noise.json exists")
    c.add_argument("runs", help="the search's --workdir")
    c.add_argument("--out", required=True)
    n = sub.add_parser("seed-noise", help="train N of the trained models again with another seed")
    n.add_argument("runs", help="the search's --workdir")
    n.add_argument("--task", required=True, help="task.yaml of the search")
    n.add_argument("--out", required=True)
    n.add_argument("--models", type=int, default=4)
    n.add_argument("--seed", type=int, default=1)
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.pop_demo"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "prepare":
        print(json.dumps(prepare(args.out), indent=1))
        return 0
    results = trained_results(args.runs)
    if not results:
        raise CliError(f"{args.runs}: no trained candidates (accuracy.json) found")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.cmd == "seed-noise":
        noise = write_seed_noise(results, args.task, out, args.models, args.seed)
        print(f"seed noise over {len(noise['models'])} models: mean |ΔAcc| {100 * noise['mean_abs_difference']:.2f} %, "
              f"max {100 * noise['max_abs_difference']:.2f} %")
        return 0
    report, demo, png = write_order_report(results, out)
    _print_summary(report, demo, png)
    return 0


def _print_summary(report: dict, demo: dict, png: Path) -> None:
    frac, spread = report["held_fraction"], demo["accuracy_spread"]
    print(f"trained {report['trained']}: accuracy {100 * spread['min']:.2f}-{100 * spread['max']:.2f} % "
          f"(range {100 * spread['range']:.2f} %)")
    if "seed_noise" in demo:
        print(f"seed noise: mean |ΔAcc| {100 * demo['seed_noise']['mean_abs_difference']:.2f} %, max "
              f"{100 * demo['seed_noise']['max_abs_difference']:.2f} % over {demo['seed_noise']['models']} models; "
              f"spread / noise = {demo['spread_over_noise']:.1f}")
    lowest = report["min_delta_acc"]
    print(f"order check: comparable pairs {report['comparable_pairs']}; assumption held for {report['held']} "
          f"({'n/a' if frac is None else f'{100 * frac:.1f} %'}); lowest ΔAcc "
          f"{'n/a' if lowest is None else f'{100 * lowest:.2f} %'}"
          + (f"; inverted by more than the seed noise: {demo['order_check']['inverted_beyond_noise']}, held by more: "
             f"{demo['order_check']['held_beyond_noise']}" if "seed_noise" in demo else "") + f"; {png}")


if __name__ == "__main__":
    sys.exit(main())
