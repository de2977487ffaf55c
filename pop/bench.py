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
order-violation levels.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import robustness
from .backends import BackendError, make_backend
from .validate import validate
from .algorithm import HypervolumeTracker as _HVTracker, PartialOrderPruning, hypervolume
from .evaluators import Surrogate
from .lut import FlopsProxy, LatencyTable, LutError, build, required_keys
from .order import predecessors_mask, suffix_counts
from .space import Space, SpaceConfig, SpaceError
from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import run_cli

BENCH_SPACE = {"stages": [{"widths": [64, 128, 256, 512], "max_depth": 4},
                          {"widths": [64, 128, 256, 512], "max_depth": 6},
                          {"widths": [64, 128, 256, 512], "max_depth": 4}],
               "input_size": [128, 128], "num_classes": 1000}
WINDOW_QUANTILES = (0.15, 0.70)


def _first_reaching(values, target):
    for n, v in enumerate(values, start=1):
        if v >= target:
            return n
    return None


def pop_curve(keys, lat, acc, seed, budget, ref, target):
    state = PartialOrderPruning(keys, lat, seed, patience=10 ** 9)
    hv = _HVTracker(*ref)
    for n in range(budget):
        x = state.next_candidate()
        if x is None:
            break
        state.add(x, acc[x])
        if hv.add(lat[x], acc[x]) >= target:
            return n + 1
    return None


def random_curve(lat, acc, seed, budget, ref, target):
    order = np.random.default_rng(seed).permutation(lat.size)[:budget]
    hv = _HVTracker(*ref)
    for n, x in enumerate(order, start=1):
        if hv.add(lat[x], acc[x]) >= target:
            return n
    return None


def nsga2_curve(space, acc, seed, budget, ref, target, max_trials_factor=20):
    """NSGA-II over per-stage depth and per-block width choice; a draw is repaired into a
    valid encoding (widths sorted, never narrower than the previous stage) and counts as a
    training only if it lies in Ŝ and was not trained before."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = space.config
    index = {bytes(r): i for i, r in enumerate(space.counts)}
    off = cfg.offsets
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=50)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    seen: dict[int, tuple[float, float]] = {}
    hv = _HVTracker(*ref)
    trials = 0
    while len(seen) < budget and trials < max_trials_factor * budget:
        trials += 1
        t = study.ask()
        row = np.zeros(off[-1], np.uint8)
        floor = 0
        for s, spec in enumerate(cfg.stages):
            d = t.suggest_int(f"depth{s}", spec.min_depth, spec.max_depth)
            choices = sorted(max(t.suggest_int(f"w{s}_{b}", 0, len(spec.choices) - 1), floor)
                             for b in range(spec.max_depth))[:d]
            for j in choices:
                row[off[s] + j] += 1
            floor = choices[-1] if len(choices) else floor  # same width list in every stage
        i = index.get(bytes(row))
        if i is None:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            continue
        if i not in seen:
            seen[i] = (float(space.latency[i]), float(acc[i]))
            if hv.add(*seen[i]) >= target:
                study.tell(t, seen[i])
                return len(seen)
        study.tell(t, seen[i])
    return None


def measure_lut(cfg: SpaceConfig, backend_name: str, path: Path, iterations: int,
                fresh: bool = True) -> LatencyTable:
    """The bench's LUT on `backend_name`: measured anew (default; a table measured in another
    session saw another machine state), or reused from `path` when `fresh` is False."""
    backend = make_backend(backend_name, threads=1, iterations=iterations)
    reuse = path.exists() and not fresh
    table = LatencyTable.load(path) if reuse else LatencyTable(backend.platform())
    table.check_platform(backend.platform(), str(path))
    build(table, required_keys(cfg), backend, save_to=path)
    return table


def lut_validation(backends: list[str], lut: Path, n: int, iterations: int, out_dir: Path,
                   calibration_nets: int = 12, repeats: int = 3) -> dict:
    """`bench/pop_details.json` -> "lut_validation": per backend, a fresh LUT of the bench's
    space, then `repeats` checks on n whole nets, each calibrated on `calibration_nets` others
    timed in the same rounds, and one more check with a second process busy on another core:
    {backend: {n, within_10pct, median_abs_error_pct, mean_error_pct, sd_error_pct,
    calibration_scale, part_overhead_ms, repeats: [...], busy: {...}, worst: {...}, protocol,
    plot}} (a backend that cannot run here: {"error": why})."""
    cfg = SpaceConfig.from_dict(dict(BENCH_SPACE, latency_ms=[0, 1e9]))
    result = {}
    for name in backends:
        try:
            path = lut.with_name(f"{lut.stem}_{name}{lut.suffix}")
            table = measure_lut(cfg, name, path, iterations)
            backend = make_backend(name, threads=1, iterations=iterations)
            v = validate(Space.enumerate(cfg, table), table, backend, n=n, seed=0,
                         out_dir=out_dir / name, calibrate_on=calibration_nets, repeats=repeats,
                         busy=True)
            table.save(path)
        except BackendError as err:
            result[name] = {"error": str(err)}
            continue
        result[name] = {k: v[k] for k in ("n", "within_10pct", "median_abs_error_pct", "mean_error_pct",
                                          "sd_error_pct", "calibration_scale", "part_overhead_ms",
                                          "repeats", "busy", "worst", "protocol", "plot")}
        runs = ", ".join(f"{r['within_10pct'] * 100:.0f} % / {r['median_abs_error_pct']:.2f} %"
                         for r in v["repeats"])
        print(f"LUT check ({name}): {v['n']} whole networks, within ±10 % / median |error| of each "
              f"run: {runs}; busy neighbour: {v['busy']['within_10pct'] * 100:.0f} % / "
              f"{v['busy']['median_abs_error_pct']:.2f} % (target >= 95 %, median <= 3 %)")
    return result


def p_update_seconds() -> dict:
    """One ΔP computation (predecessor mask + latency test) over |Ŝ| >= 10^6."""
    cfg = SpaceConfig.from_dict({"stages": [{"max_depth": 8}, {"max_depth": 12}, {"max_depth": 8}],
                                 "input_size": [224, 224], "latency_ms": [1.0, 4.0]})
    space = Space.enumerate(cfg, FlopsProxy())
    keys = suffix_counts(space.counts, cfg.offsets)
    rng = np.random.default_rng(0)
    times = []
    for w in rng.choice(space.size, 20, replace=False):
        t = time.perf_counter()
        mask = predecessors_mask(keys, int(w)) & (space.latency >= space.latency[w] * 0.9)
        mask.sum()
        times.append(time.perf_counter() - t)
    return {"space_size": space.size, "enumeration_s": space.seconds, "p_update_s_median": float(np.median(times)),
            "p_update_s_max": float(np.max(times))}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pop.bench", description=__doc__,
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
    return p


def _search_space(args):
    """(backend, table, Ŝ, its window) of the search comparison."""
    backend = args.backend
    if backend == "auto":
        try:
            make_backend("caffe")
            backend = "caffe"
        except BackendError:
            backend = "opencv"
    lut_path = args.lut.with_name(f"{args.lut.stem}_{backend}{args.lut.suffix}")
    cfg_all = SpaceConfig.from_dict(dict(BENCH_SPACE, latency_ms=[0, 1e9]))
    table = measure_lut(cfg_all, backend, lut_path, args.iterations, fresh=not args.reuse_lut)
    everything = Space.enumerate(cfg_all, table)
    lo, hi = (float(np.quantile(everything.latency, q)) for q in WINDOW_QUANTILES)
    space = Space.enumerate(cfg_all.with_window(lo, hi), table)
    print(f"Ŝ: {space.size} architectures in [{lo:.3f}, {hi:.3f}] ms (LUT: {backend}, {table.platform.get('cpu')})")
    return backend, table, space, (lo, hi)


def _one_seed(space, encodings, keys, seed: int, patience: int, hi: float) -> dict:
    """POP (to its stopping rule, then on), random search and NSGA-II on one surrogate seed."""
    acc = np.array([Surrogate(seed=seed).evaluate(e) for e in encodings])
    ref = (hi, float(acc.min()))
    exhaustive = hypervolume(space.latency, acc, *ref)
    target = 0.99 * exhaustive
    state = PartialOrderPruning(keys, space.latency, seed, patience)
    while not state.finished:
        x = state.next_candidate()
        state.add(x, acc[x])
    budget = space.size
    row = {"seed": seed, "trained": len(state.D), "pruned": state.pruned_not_trained,
           "pruned_per_trained": state.pruned_not_trained / len(state.D),
           "pop": pop_curve(keys, space.latency, acc, seed, budget, ref, target),
           "random": random_curve(space.latency, acc, seed, budget, ref, target),
           "nsga2": nsga2_curve(space, acc, seed, budget, ref, target),
           "hv_at_stop": hypervolume(space.latency[state.D], acc[state.D], *ref) / exhaustive}
    print(f"seed {seed}: POP stopped after {row['trained']} trainings, pruned {row['pruned']} "
          f"({row['pruned_per_trained']:.2f}/trained, {row['hv_at_stop'] * 100:.2f} % of exhaustive HV); "
          f"trainings to 99 % HV: POP {row['pop']}, random {row['random']}, NSGA-II {row['nsga2']}")
    return row


def main(argv=None) -> int:
    return run_cli(lambda: _bench(_parser().parse_args(argv)), "pop.bench",
                   expected=(robustness.MeasuredOrderError, BackendError, LutError, SpaceError))


def _bench(args) -> int:
    measured = robustness.load_measured(args.measured)   # a bad --measured fails now, not after the benchmark
    backend, table, space, (lo, hi) = _search_space(args)
    keys = suffix_counts(space.counts, space.config.offsets)
    encodings = space.encodings()
    validation = None
    if args.validate:
        validation = lut_validation([b for b in args.validate_backends.split(",") if b], args.lut,
                                    args.validate, args.iterations, args.out.parent / "pop_lut_validation")
    seeds = list(range(args.seeds))
    per_seed = [_one_seed(space, encodings, keys, seed, args.patience, hi) for seed in seeds]

    def mean(key):
        vals = [r[key] for r in per_seed]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    result = {"pruned_per_trained": float(np.mean([r["pruned_per_trained"] for r in per_seed])),
              "trainings_to_99pct": {"pop": mean("pop"), "random": mean("random"), "nsga2": mean("nsga2")},
              "space_size": space.size, "seeds": seeds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    details = {"window_ms": [lo, hi], "window_quantiles": WINDOW_QUANTILES, "space": space.config.to_dict(),
               "lut_backend": backend, "lut_platform": table.platform, "patience": args.patience,
               "per_seed": per_seed, "lut_validation": validation, "p_update_1e6": p_update_seconds()}
    atomic_write_text(args.out.parent / "pop_details.json", json.dumps(details, indent=1) + "\n")
    print("robustness: the same space, seeds and budget at growing order-violation levels")
    robustness.run(space, encodings, seeds, hi, args.out.parent / "pop_details.json", measured=measured)
    print(json.dumps(result, indent=1))
    print(f"one P-update over |Ŝ| = {details['p_update_1e6']['space_size']}: "
          f"{details['p_update_1e6']['p_update_s_median'] * 1e3:.1f} ms (median of 20; target <= 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
