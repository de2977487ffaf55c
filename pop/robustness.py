"""Does pruning still pay when the partial order is noisy?  (``make bench-pop``, issue 15)

The bench's space, seeds and budget (|Ŝ| trainings), at several order-violation levels:

* ``none``      — the surrogate's noiseless accuracy: the order holds exactly;
* ``paper``     — the surrogate as in the main table: noise clipped so that a comparable pair
                  is inverted by at most 0.1 % (the paper's ΔAcc >= −0.1 %);
* ``1pct``, ``3pct``, ``10pct`` — noiseless accuracy + Gaussian noise scaled
                  (``pop.noise.sigma_for_share``) so that 1, 3, 10 % of the comparable pairs
                  of Ŝ are inverted;
* ``measured``  — the same, at the share of inverted trained pairs measured by a real
                  search on this machine (``make pop-demo``; the figure and its source are in
                  ``pop/measured_order.json``, or ``--measured FILE``).

The noisy accuracy is what "training" returns: every method decides on it (what to train,
what to prune, which parents to breed).  A search is *scored* on the models it trained at
their noiseless accuracy — the model's worth, which a second training would scatter around
— so the exhaustive boundary, the 99 % target and each method's hypervolume use the
noiseless values (scoring on the noisy ones instead makes the target the luckiest draws of
the noise: at 10 % inverted pairs even random search then needs 96 % of Ŝ).
Methods, each with the same budget: ``pop`` (Algorithm 1, run on until Ŝ \\ P is empty),
``pop_noise_aware`` (``pop.noise_aware``), each also with boundary sampling
(``pop_boundary``, ``pop_noise_aware_boundary``: ``pop.sampling``), ``random``, ``nsga2`` (Optuna's NSGA-II,
population 50, the encoding of ``pop.sampler.SpaceParams``) and ``nsga2_order`` (the same
NSGA-II wrapped in ``pop.sampler.PartialOrderSampler`` with the noise-aware rule); ``tpe`` /
``tpe_order`` (Optuna's default sampler, ``TPESampler`` with its defaults) and ``nsga3`` /
``nsga3_order`` (``NSGAIIISampler``, population 50), plain and wrapped the same way
(``pop.search_loop.SAMPLERS``).  ``DEFAULT_METHODS`` leaves out ``tpe_order`` (its cost at this
scale, below) and ``gp``; both run on request (``methods=``).  The searches are spread over
``jobs`` processes, one search per (level, seed, method); the table does not depend on it.

Per level: ``inverted_pairs_pct`` (share of 20,000 sampled comparable pairs of Ŝ inverted,
mean over seeds), ``trainings_to_99pct`` {method: mean over seeds, or null when a seed never
got there}, per-seed counts, ``final_hv_regret_pct`` (1 − HV/HV_exhaustive at the end of the
budget, mean over the seeds that never got there), the trainings each search ran and why it
stopped (``stopped_per_seed``: at the target, at the budget, when Ŝ \\ P is empty — plain POP —
or, an Optuna sampler, after 10,000 asks, ``nsga2_max_asks``, or stalled: ``stall_rule``), an
Optuna sampler's asks, the seconds per search, HV curves, ``optuna_version``; the best POP
variant against NSGA-II and against TPE (:func:`verdict`); plus ``pop_robustness.png``.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import resources
from pathlib import Path

import numpy as np
import optuna
from tqdm import tqdm

from .algorithm import hypervolume
from .evaluators import Surrogate
from .noise import comparable_pairs, inverted_share, noisy, sigma_for_share
from .search_cache import SearchCache
from .search_loop import MAX_ASKS, METHODS, POP_VARIANTS, STALL_ASKS, STALL_NEW, TARGET, run_method
from prototxt_gen.encoding import parse_encoding
from dfseg.base.atomic import atomic_save_figure, atomic_write_text
from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_json

# package data (pyproject.toml), so an installed dfseg has it too
MEASURED_FILE = resources.files("pop") / "measured_order.json"
PAIRS = 20_000
# the table's methods: all of METHODS but the order-aware TPE, whose draws cost too much at this
# scale (inside the order sampler, up to 8 TPE proposals of 17 one-dimensional fits each per
# draw: 368 s for its first 800 draws at the measured level here, growing with the trials, where
# the order-aware NSGA-II needs up to ~1,700 trainings); it runs in the replay of the real table
# and here on request (``methods=``)
DEFAULT_METHODS = tuple(m for m in METHODS if m != "tpe_order")


class MeasuredOrderError(InputError, ValueError):
    """The measured order check (``--measured``) cannot be read or makes no noise level."""


def load_measured(path: Path = MEASURED_FILE) -> dict:
    """The measured share of inverted trained pairs: ``pop/measured_order.json`` or a demo's
    ``partial_order.json`` (``solvers.pop_demo order-check``)."""
    try:
        data = read_json(path, "measured order check (JSON)", mapping=True)
    except TextFileError as e:
        raise MeasuredOrderError(str(e)) from None
    if "inverted_pairs_pct" not in data:   # a demo's order check
        try:
            n, held = int(data["comparable_pairs"]), int(data["held"])
        except (KeyError, TypeError, ValueError):
            raise MeasuredOrderError(f"{path}: needs inverted_pairs_pct, or comparable_pairs and held "
                                     "(a demo's partial_order.json)") from None
        if n < 1:
            raise MeasuredOrderError(f"{path}: no comparable pairs to measure the order on")
        data = {"inverted_pairs_pct": 100.0 * (n - held) / n, "comparable_pairs": n, "source": str(path)}
    try:
        pct = float(data["inverted_pairs_pct"])
    except (TypeError, ValueError):
        raise MeasuredOrderError(f"{path}: inverted_pairs_pct is not a number") from None
    if not 0.0 < pct < 50.0:
        raise MeasuredOrderError(f"{path}: inverted_pairs_pct {pct} must lie in (0, 50) to be modelled as noise "
                                 "(50 % is no order at all)")
    return data


def levels(measured: dict) -> list[dict]:
    return [{"level": "none", "kind": "clean", "description": "noiseless surrogate: the order holds exactly"},
            {"level": "paper", "kind": "paper", "description": "surrogate noise clipped to ±0.05 %: "
             "no comparable pair inverted by more than 0.1 % (the paper's tolerance)"},
            *({"level": f"{pct:g}pct", "kind": "share", "target_inverted_pct": float(pct),
               "description": f"Gaussian noise inverting {pct:g} % of the comparable pairs"} for pct in (1, 3, 10)),
            {"level": "measured", "kind": "share", "target_inverted_pct": float(measured["inverted_pairs_pct"]),
             "description": "Gaussian noise inverting the share of trained pairs measured on real training",
             "source": measured.get("source", "")}]


def level_accuracies(level: dict, encodings: list[str], keys: np.ndarray, seed: int):
    """(what training returns for every row of Ŝ at this level and seed, the noiseless
    accuracy, the noise sigma)."""
    sur = Surrogate(seed=seed)
    clean = np.array([sur.clean_accuracy(parse_encoding(e)) for e in encodings])
    if level["kind"] == "paper":
        return np.array([sur.evaluate(e) for e in encodings]), clean, 0.0
    if level["kind"] == "clean":
        return clean, clean, 0.0
    pairs = comparable_pairs(keys, PAIRS, seed)
    sigma = sigma_for_share(clean, pairs, level["target_inverted_pct"] / 100.0, seed)
    return noisy(clean, sigma, seed), clean, sigma


# ----------------------------------------------------------------------------- one level
def mean_or_none(values):
    return None if any(v is None for v in values) else float(np.mean(values))


def _curve_grid(budget: int, points: int = 48) -> np.ndarray:
    return np.unique(np.geomspace(1, budget, points).astype(int))


def mean_curve(curves: list[np.ndarray], budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(trainings on a log grid, mean HV % over the seeds' curves): a curve ends at the target
    (or the budget), so it holds its last value beyond that."""
    grid = _curve_grid(budget)
    padded = np.array([np.concatenate([c[:budget], np.full(max(0, budget - len(c)), c[-1] if len(c) else 0.0)])
                       for c in curves])
    return grid, 100.0 * padded.mean(axis=0)[grid - 1]


# one search per task: (level, seed, method), spread over processes (``jobs``); a search is
# deterministic in its arguments, so the table is the same for any number of jobs
_TASK_CONTEXT: dict = {}
_ACCURACIES: dict = {}


def _set_context(**context) -> None:
    _TASK_CONTEXT.clear()
    _ACCURACIES.clear()
    _TASK_CONTEXT.update(context)


def _seed_setup(level: dict, seed: int) -> tuple:
    """(acc, truth, sigma, inverted %, ref, exhaustive HV) of a level and seed, once per process."""
    key = (level["level"], seed)
    if key not in _ACCURACIES:
        c = _TASK_CONTEXT
        acc, truth, sigma = level_accuracies(level, c["encodings"], c["keys"], seed)
        inverted = 100.0 * inverted_share(acc, comparable_pairs(c["keys"], PAIRS, seed))
        ref = (c["window_hi"], float(truth.min()))
        _ACCURACIES[key] = (acc, truth, sigma, inverted, ref, hypervolume(c["space"].latency, truth, *ref))
    return _ACCURACIES[key]


def _search(task: tuple) -> tuple:
    """(task, the level's accuracy facts for the seed, run_method's result, seconds)."""
    level, seed, method = task
    c = _TASK_CONTEXT
    acc, truth, sigma, inverted, ref, exhaustive = _seed_setup(level, seed)
    t = time.perf_counter()
    r = run_method(method, c["space"], c["keys"], acc, truth, seed, c["space"].size, ref, exhaustive, c["max_asks"])
    return task, (inverted, sigma), r, time.perf_counter() - t


def run_searches(tasks: list[tuple], jobs: int, log=print, cache: SearchCache | None = None, **context) -> dict:
    """{(level name, seed, method): (facts, result, seconds)} for every task, over `jobs` processes;
    with `cache`, finished searches are taken from it and new ones saved to it as they finish."""
    _set_context(**context)
    done = {}
    cached = [cache.load(*t) if cache is not None else None for t in tasks]
    todo = [t for t, c in zip(tasks, cached) if c is None]
    if cache is not None and len(todo) < len(tasks):
        log(f"robustness: {len(tasks) - len(todo)} of {len(tasks)} searches finished earlier, taken from "
            f"{cache.directory}")
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="robustness searches", unit="search",
              disable=log is None) as bar:
        def record(task, facts, r, seconds, fresh=True):
            level, seed, method = task
            done[(level["level"], seed, method)] = (facts, r, seconds)
            if fresh and cache is not None:
                cache.save(level, seed, method, facts, r, seconds)
            bar.update(int(fresh))
        for task, earlier in zip(tasks, cached):
            if earlier is not None:
                record(task, *earlier, fresh=False)
        if jobs <= 1:
            for task in todo:
                record(*_search(task))
            return done
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
            try:
                for future in as_completed([pool.submit(_search, task) for task in todo]):
                    record(*future.result())
            except BaseException:   # a failed search or ^C: the searches not started are dropped
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return done


def level_entry(level: dict, seeds, methods, done: dict, budget: int, max_asks: int, log=print) -> tuple[dict, dict]:
    """(the level's JSON entry, mean HV curve per method for the plot) from its searches."""
    name = level["level"]
    got = {m: [done[(name, s, m)][1] for s in seeds] for m in methods}
    per_seed = {m: [r["trainings"] for r in got[m]] for m in methods}
    facts = [done[(name, s, methods[0])][0] for s in seeds]
    for s, (inverted, _sigma) in zip(seeds, facts):
        log(f"  {name} seed {s}: {inverted:.3f} % of comparable pairs inverted; "
            "trainings to 99 % HV: " + ", ".join(f"{m} {done[(name, s, m)][1]['trainings']} "
                                                 f"({done[(name, s, m)][2]:.0f} s)" for m in methods))
    mean_curves = {m: mean_curve([r["curve"] for r in got[m]], budget) for m in methods}
    entry = {k: v for k, v in level.items() if k != "kind"}
    entry.update({
        "inverted_pairs_pct": float(np.mean([f[0] for f in facts])),
        "inverted_pairs_pct_per_seed": [f[0] for f in facts],
        "noise_sigma": float(np.mean([f[1] for f in facts])),
        "trainings_to_99pct": {m: mean_or_none(per_seed[m]) for m in methods},
        "trainings_to_99pct_per_seed": per_seed,
        "trainings_run_per_seed": {m: [len(r["curve"]) for r in got[m]] for m in methods},
        # why each search ended: target, budget, exhausted (Ŝ \ P empty), asks (the cap), stalled
        "stopped_per_seed": {m: [r["stopped"] for r in got[m]] for m in methods},
        "asks_per_seed": {m: [r["asks"] for r in got[m]] for m in methods if "asks" in got[m][0]},
        "seconds_per_seed": {m: [round(done[(name, s, m)][2], 1) for s in seeds] for m in methods},
        "final_hv_regret_pct": {m: (None if all(v is not None for v in per_seed[m]) else
                                    float(np.mean([100.0 * (1.0 - r["final_hv"]) for r in got[m]
                                                   if r["trainings"] is None])))
                                for m in methods},
        "nsga2_max_asks": max_asks,   # the cap of every Optuna sampler's asks
        "stall_rule": {"asks": STALL_ASKS, "fewer_new_than": STALL_NEW},
        "optuna_version": optuna.__version__,
        "hv_curve_pct": {m: [[int(n), round(float(h), 3)] for n, h in zip(*mean_curves[m])] for m in methods},
    })
    entry.update(verdict(per_seed))
    return entry, mean_curves


def verdict(per_seed: dict) -> dict:
    """Best POP variant (fewest mean trainings among those that always reached the target)
    against NSGA-II: ratio of the means (None when NSGA-II missed the target on some seed)
    and the seeds where it needed fewer (a seed where NSGA-II missed counts as fewer); the
    same against TPE (``best_pop_vs_tpe``, ``seeds_best_pop_fewer_than_tpe``) when it ran."""
    reached = {m: mean_or_none(per_seed[m]) for m in POP_VARIANTS if m in per_seed}
    reached = {m: v for m, v in reached.items() if v is not None}
    if not reached:
        out = {"best_pop_variant": None, "best_pop_vs_nsga2": None, "seeds_best_pop_fewer": None,
               "pruning_pays": False}
        if "tpe" in per_seed:
            out.update({"best_pop_vs_tpe": None, "seeds_best_pop_fewer_than_tpe": None})
        return out
    best = min(reached, key=reached.get)
    ratio, fewer = _against(per_seed, best, reached[best], "nsga2")
    out = {"best_pop_variant": best, "best_pop_vs_nsga2": ratio, "seeds_best_pop_fewer": fewer,
           "pruning_pays": bool(ratio is None or ratio < 1.0)}
    if "tpe" in per_seed:
        out["best_pop_vs_tpe"], out["seeds_best_pop_fewer_than_tpe"] = _against(per_seed, best, reached[best], "tpe")
    return out


def _against(per_seed: dict, best: str, best_mean: float, peer: str) -> tuple[float | None, int]:
    """(ratio of the means, None when `peer` missed on some seed; seeds where `best` needed fewer)."""
    theirs = mean_or_none(per_seed.get(peer, [None]))
    fewer = sum(b is None or a < b for a, b in zip(per_seed[best], per_seed.get(peer, [])))
    return (None if theirs is None else best_mean / theirs), int(fewer)


# ----------------------------------------------------------------------------- outputs
def plot(curves_by_level: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(curves_by_level)
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        title, curves = curves_by_level[name]
        for m, (grid, hv) in curves.items():
            # the noise-aware variants equal the plain ones where no trained pair is inverted:
            # dashed, so the line underneath stays visible
            ax.plot(grid, hv, label=m, lw=1.5, ls="--" if "noise_aware" in m else "-")
        ax.axhline(100 * TARGET, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_ylim(80, 100.5)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("trainings")
        ax.set_ylabel("HV, % of exhaustive (mean of seeds)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def merge_into_details(details_path: Path, entries, key: str = "robustness") -> None:
    """Set ``key`` in the details JSON, keeping every other key as it is on disk."""
    data = read_json(details_path, "bench details file (JSON)", mapping=True) if details_path.exists() else {}
    data[key] = entries
    details_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(details_path, json.dumps(data, indent=1) + "\n")


def run(space, encodings, seeds, window_hi, details_path: Path, measured: Path | dict = MEASURED_FILE,
        methods=DEFAULT_METHODS, max_asks: int = MAX_ASKS, jobs: int = 1, cache_dir: Path | None = None,
        log=print) -> list[dict]:
    """All levels; writes ``robustness`` into `details_path` and the plot beside it.
    `measured` is a file for :func:`load_measured` or what it returned; `jobs` processes run
    the searches (the same table for any number); with `cache_dir` every finished search is kept
    there and a rerun on the same Ŝ runs only the rest (:mod:`pop.search_cache`)."""
    methods = tuple(methods)
    all_levels = levels(measured if isinstance(measured, dict) else load_measured(measured))
    tasks = [(level, seed, m) for level in all_levels for seed in seeds for m in methods]
    cache = SearchCache(cache_dir, space, window_hi, max_asks) if cache_dir is not None else None
    done = run_searches(tasks, jobs, log, cache, space=space, keys=space.order_keys(), encodings=encodings,
                        window_hi=window_hi, max_asks=max_asks)
    entries, curves = [], {}
    for level in all_levels:
        entry, mean_curves = level_entry(level, seeds, methods, done, space.size, max_asks, log)
        entries.append(entry)
        curves[level["level"]] = (f"{level['level']}: {entry['inverted_pairs_pct']:.3f} % of comparable pairs inverted",
                                  mean_curves)
        log(table_row(entry))
    png = plot(curves, details_path.with_name("pop_robustness.png"))
    for e in entries:
        e["plot"] = str(png)
    merge_into_details(details_path, entries)
    return entries


def table_row(entry: dict) -> str:
    t = entry["trainings_to_99pct"]
    cells = ", ".join(f"{m} {'—' if v is None else f'{v:.0f}'}" for m, v in t.items())
    regret = {m: r for m, r in entry["final_hv_regret_pct"].items() if r is not None}
    extra = "; never reached, HV regret: " + ", ".join(f"{m} {r:.2f} %" for m, r in regret.items()) if regret else ""
    return f"{entry['level']}: {entry['inverted_pairs_pct']:.3f} % inverted; trainings to 99 % HV: {cells}{extra}"
