"""``make bench-pop``: does pruning pay?  (issue §8)

On a realistic Ŝ (>= 5,000 architectures, latencies from a LUT measured on this machine) with
the surrogate evaluator, averaged over seeds:

* pruned_per_trained — |P \\ D| / |D| when Algorithm 1 stops (B(D) unchanged for K
  iterations); the paper: 438 / 200 = 2.2;
* trainings_to_99pct — trainings needed until the trained models' hypervolume (latency ↓,
  accuracy ↑; reference point (Tmax, min accuracy of Ŝ)) reaches 99 % of the exhaustive
  boundary's, for POP (run on past its stopping rule), plain random search and Optuna's
  NSGA-II, all with the same budget (None when a method does not get there within it).

Writes ``bench/pop.json`` with exactly {"pruned_per_trained", "trainings_to_99pct": {"pop",
"random", "nsga2"}, "space_size", "seeds"} and ``bench/pop_details.json`` with everything else
(per-seed numbers, the window, the LUT platform, the LUT's check against whole networks —
median |error| and share within ±10 %, target >= 95 % — and one P-update over 10^6 rows).
Then ``pop.robustness`` adds ``robustness`` to the details: the same comparison at growing
order-violation levels, and ``pop.replay`` adds ``real_table``: every method replaying the table
of real trainings in ``bench/pop_table/`` (``make pop-table``; ``--replay-only`` runs just that).
(The work is in ``pop.benchmark`` and ``pop.search_loop``, the one
search loop both comparisons run; this module reads the options and writes the files.)
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from . import replay, robustness
from .benchmark import WINDOW_QUANTILES, bench_space, lut_validation, one_seed, p_update_seconds, resolve_backend
from .order import suffix_counts
from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import positive_int_argument, run_cli

PROG = "python -m pop.bench"
# beside bench/pop.json: every finished robustness search, so that a rerun with --reuse-lut (the
# same Ŝ) resumes an interrupted run (pop.search_cache)
SEARCHES_DIR = "pop_robustness_searches"


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="auto", help="LUT backend: caffe, opencv, ... (auto: caffe if built, else opencv)")
    p.add_argument("--lut", type=Path, default=Path("build/pop/bench_lut.json"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--patience", "-K", type=int, default=20)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("bench/pop.json"))
    p.add_argument("--validate", type=int, default=50, help="architectures profiled whole for the LUT check (0: skip)")
    p.add_argument("--validate-backends", default="caffe,onnxruntime,torch",
                   help="engines whose LUT is checked against whole nets")
    p.add_argument("--reuse-lut", action="store_true",
                   help="reuse the search's LUT file instead of measuring it anew")
    p.add_argument("--measured", type=Path, default=robustness.MEASURED_FILE,
                   help="measured share of inverted trained pairs for the robustness levels (see pop.robustness)")
    p.add_argument("--real-table", type=Path, default=replay.DEFAULT_TABLE,
                   help="the table of real trainings every method replays (make pop-table; pop.replay)")
    p.add_argument("--real-table-seeds", type=int, default=replay.DEFAULT_SEEDS)
    p.add_argument("--jobs", type=positive_int_argument, default=os.cpu_count() or 1,
                   help="processes for the robustness searches (default: one per core; any number gives the same table)")
    p.add_argument("--replay-only", action="store_true",
                   help="only replay the table of real trainings (real_table in pop_details.json)")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _bench(args), prog=prog or PROG)


def _search_space(args):
    """(backend, table, Ŝ, its window) of the search comparison."""
    backend = resolve_backend(args.backend)
    table, space, window = bench_space(backend, args.lut, args.iterations, reuse_lut=args.reuse_lut)
    return backend, table, space, window


def _bench(args) -> int:
    details_path = args.out.parent / "pop_details.json"
    if args.replay_only:
        replay.run(args.real_table, details_path, args.real_table_seeds)
        return 0
    measured = robustness.load_measured(args.measured)   # a bad --measured fails now, not after the benchmark
    backend, table, space, (lo, hi) = _search_space(args)
    keys = suffix_counts(space.counts, space.config.offsets)
    encodings = space.encodings()
    validation = None
    if args.validate:
        validation = lut_validation([b for b in args.validate_backends.split(",") if b], args.lut,
                                    args.validate, args.iterations, args.out.parent / "pop_lut_validation")
    seeds = list(range(args.seeds))
    per_seed = [one_seed(space, encodings, keys, seed, args.patience, hi) for seed in seeds]

    def mean(key):
        vals = [r[key] for r in per_seed]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    result = {"pruned_per_trained": float(np.mean([r["pruned_per_trained"] for r in per_seed])),
              "trainings_to_99pct": {"pop": mean("pop"), "random": mean("random"), "nsga2": mean("nsga2")},
              "space_size": space.size, "seeds": seeds}
    details = {"window_ms": [lo, hi], "window_quantiles": WINDOW_QUANTILES, "space": space.config.to_dict(),
               "lut_backend": backend, "lut_platform": table.platform, "patience": args.patience,
               "per_seed": per_seed, "lut_validation": validation, "p_update_1e6": p_update_seconds()}
    # the details grow in a file of their own and replace the last run's only when this one is
    # whole: a run stopped part-way leaves the last complete results as they were
    partial = details_path.with_name(f"{details_path.stem}.partial{details_path.suffix}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(partial, json.dumps(details, indent=1) + "\n")
    print("robustness: the same space, seeds and budget at growing order-violation levels")
    robustness.run(space, encodings, seeds, hi, partial, measured=measured, jobs=args.jobs,
                   cache_dir=args.out.parent / SEARCHES_DIR)
    print("real table: every method replays the table of real trainings")
    replay.run(args.real_table, partial, args.real_table_seeds)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    os.replace(partial, details_path)
    print(json.dumps(result, indent=1))
    print(f"one P-update over |Ŝ| = {details['p_update_1e6']['space_size']}: "
          f"{details['p_update_1e6']['p_update_s_median'] * 1e3:.1f} ms (median of 20; target <= 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
