"""The work behind ``make bench-pop`` (the command is :mod:`pop.bench`): the bench's space and
its LUT, the LUT's check against whole networks, one seed of POP against random search and
NSGA-II (:mod:`pop.search_loop`), and the cost of one P-update over 10^6 rows."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .algorithm import PartialOrderPruning, hypervolume
from .backends import BackendError, make_backend
from .evaluators import Surrogate
from .lut import FlopsProxy, LatencyTable, build, required_keys
from .order import predecessors_mask, suffix_counts
from .search_loop import TARGET, run_method
from .space import Space, SpaceConfig
from .validate import validate

__all__ = ["BENCH_SPACE", "WINDOW_QUANTILES", "NSGA2_ASKS_PER_TRAINING", "bench_space", "measure_lut",
           "lut_validation", "one_seed", "p_update_seconds", "resolve_backend"]

BENCH_SPACE = {"stages": [{"widths": [64, 128, 256, 512], "max_depth": 4},
                          {"widths": [64, 128, 256, 512], "max_depth": 6},
                          {"widths": [64, 128, 256, 512], "max_depth": 4}],
               "input_size": [128, 128], "num_classes": 1000}
WINDOW_QUANTILES = (0.15, 0.70)
# NSGA-II may ask up to this many draws per training of the budget (the bench's budget is all
# of Ŝ, so it never runs out of asks before POP or random search run out of models)
NSGA2_ASKS_PER_TRAINING = 20
VALIDATION_KEYS = ("n", "within_10pct", "median_abs_error_pct", "mean_error_pct", "sd_error_pct",
                   "calibration_scale", "part_overhead_ms", "repeats", "busy", "worst", "protocol", "plot")


def _bench_config() -> SpaceConfig:
    return SpaceConfig.from_dict(dict(BENCH_SPACE, latency_ms=[0, 1e9]))


def resolve_backend(name: str) -> str:
    """``auto``: caffe where it is built, else opencv; any other name as given."""
    if name != "auto":
        return name
    try:
        make_backend("caffe")
        return "caffe"
    except BackendError:
        return "opencv"


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


def bench_space(backend: str, lut: Path, iterations: int, reuse_lut: bool = False, log=print):
    """(table, Ŝ, its window (lo, hi) in ms): BENCH_SPACE between the WINDOW_QUANTILES of
    its latencies on `backend`'s LUT (stored beside `lut` as ``<stem>_<backend><suffix>``)."""
    lut_path = lut.with_name(f"{lut.stem}_{backend}{lut.suffix}")
    cfg_all = _bench_config()
    table = measure_lut(cfg_all, backend, lut_path, iterations, fresh=not reuse_lut)
    everything = Space.enumerate(cfg_all, table)
    lo, hi = (float(np.quantile(everything.latency, q)) for q in WINDOW_QUANTILES)
    space = Space.enumerate(cfg_all.with_window(lo, hi), table)
    log(f"Ŝ: {space.size} architectures in [{lo:.3f}, {hi:.3f}] ms (LUT: {backend}, {table.platform.get('cpu')})")
    return table, space, (lo, hi)


def lut_validation(backends: list[str], lut: Path, n: int, iterations: int, out_dir: Path,
                   calibration_nets: int = 12, repeats: int = 3, log=print) -> dict:
    """`bench/pop_details.json` -> "lut_validation": per backend, a fresh LUT of the bench's
    space, then `repeats` checks on n whole nets, each calibrated on `calibration_nets` others
    timed in the same rounds, and one more check with a second process busy on another core:
    {backend: {n, within_10pct, median_abs_error_pct, mean_error_pct, sd_error_pct,
    calibration_scale, part_overhead_ms, repeats: [...], busy: {...}, worst: {...}, protocol,
    plot}} (a backend that cannot run here: {"error": why})."""
    cfg = _bench_config()
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
        result[name] = {k: v[k] for k in VALIDATION_KEYS}
        runs = ", ".join(f"{r['within_10pct'] * 100:.0f} % / {r['median_abs_error_pct']:.2f} %"
                         for r in v["repeats"])
        log(f"LUT check ({name}): {v['n']} whole networks, within ±10 % / median |error| of each "
            f"run: {runs}; busy neighbour: {v['busy']['within_10pct'] * 100:.0f} % / "
            f"{v['busy']['median_abs_error_pct']:.2f} % (target >= 95 %, median <= 3 %)")
    return result


def one_seed(space, encodings, keys, seed: int, patience: int, hi: float, log=print) -> dict:
    """POP (to its stopping rule, then on), random search and NSGA-II on one surrogate seed:
    {seed, trained, pruned, pruned_per_trained, pop, random, nsga2 (trainings to 99 % of the
    exhaustive HV, None: never), hv_at_stop}."""
    acc = np.array([Surrogate(seed=seed).evaluate(e) for e in encodings])
    ref = (hi, float(acc.min()))
    exhaustive = hypervolume(space.latency, acc, *ref)
    state = PartialOrderPruning(keys, space.latency, seed, patience)
    while not state.finished:
        x = state.next_candidate()
        state.add(x, acc[x])
    budget = space.size

    def trainings(method):   # the surrogate's accuracy is both what training returns and the truth
        return run_method(method, space, keys, acc, acc, seed, budget, ref, exhaustive,
                          max_asks=NSGA2_ASKS_PER_TRAINING * budget)["trainings"]

    row = {"seed": seed, "trained": len(state.D), "pruned": state.pruned_not_trained,
           "pruned_per_trained": state.pruned_not_trained / len(state.D),
           "pop": trainings("pop"), "random": trainings("random"), "nsga2": trainings("nsga2"),
           "hv_at_stop": hypervolume(space.latency[state.D], acc[state.D], *ref) / exhaustive}
    log(f"seed {seed}: POP stopped after {row['trained']} trainings, pruned {row['pruned']} "
        f"({row['pruned_per_trained']:.2f}/trained, {row['hv_at_stop'] * 100:.2f} % of exhaustive HV); "
        f"trainings to {TARGET * 100:.0f} % HV: POP {row['pop']}, random {row['random']}, NSGA-II {row['nsga2']}")
    return row


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
