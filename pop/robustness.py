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
(``pop.search_loop.SAMPLERS``; ``gp`` is opt-in: ``methods=``).

Per level: ``inverted_pairs_pct`` (share of 20,000 sampled comparable pairs of Ŝ inverted,
mean over seeds), ``trainings_to_99pct`` {method: mean over seeds, or null when a seed never
got there}, per-seed counts, ``final_hv_regret_pct`` (1 − HV/HV_exhaustive at the end of the
budget, mean over the seeds that never got there), the trainings each search ran (a search
stops at the target, at the budget, when Ŝ \\ P is empty — plain POP — or after 10,000 asks
of an Optuna sampler, ``nsga2_max_asks``), HV curves, ``optuna_version``; the best POP
variant against NSGA-II and against TPE (:func:`verdict`); plus ``pop_robustness.png``.
"""
from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import optuna

from .algorithm import hypervolume
from .evaluators import Surrogate
from .noise import comparable_pairs, inverted_share, noisy, sigma_for_share
from .search_loop import MAX_ASKS, METHODS, POP_VARIANTS, TARGET, run_method
from prototxt_gen.encoding import parse_encoding
from dfseg.base.atomic import atomic_save_figure, atomic_write_text
from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_json

# package data (pyproject.toml), so an installed dfseg has it too
MEASURED_FILE = resources.files("pop") / "measured_order.json"
PAIRS = 20_000


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


def run_level(level: dict, space, keys, encodings, seeds, window_hi, methods=METHODS, max_asks: int = MAX_ASKS,
              log=print) -> tuple[dict, dict]:
    """(the level's JSON entry, mean HV curve per method for the plot)."""
    budget = space.size
    per_seed = {m: [] for m in methods}
    final = {m: [] for m in methods}
    curves = {m: [] for m in methods}
    ran = {m: [] for m in methods}
    inverted, sigmas = [], []
    for seed in seeds:
        acc, truth, sigma = level_accuracies(level, encodings, keys, seed)
        inverted.append(100.0 * inverted_share(acc, comparable_pairs(keys, PAIRS, seed)))
        sigmas.append(sigma)
        ref = (window_hi, float(truth.min()))
        exhaustive = hypervolume(space.latency, truth, *ref)
        row = []
        for m in methods:
            t = time.perf_counter()
            r = run_method(m, space, keys, acc, truth, seed, budget, ref, exhaustive, max_asks)
            per_seed[m].append(r["trainings"])
            final[m].append(r["final_hv"])
            curves[m].append(r["curve"])
            ran[m].append(len(r["curve"]))
            row.append(f"{m} {r['trainings']} ({time.perf_counter() - t:.0f} s)")
        log(f"  {level['level']} seed {seed}: {inverted[-1]:.3f} % of comparable pairs inverted; "
            f"trainings to 99 % HV: " + ", ".join(row))
    mean_curves = {m: mean_curve(curves[m], budget) for m in methods}
    entry = {k: v for k, v in level.items() if k != "kind"}
    entry.update({
        "inverted_pairs_pct": float(np.mean(inverted)),
        "inverted_pairs_pct_per_seed": inverted,
        "noise_sigma": float(np.mean(sigmas)),
        "trainings_to_99pct": {m: mean_or_none(per_seed[m]) for m in methods},
        "trainings_to_99pct_per_seed": per_seed,
        "trainings_run_per_seed": ran,   # where a search stopped: target, budget, Ŝ \ P empty or NSGA-II's asks
        "final_hv_regret_pct": {m: (None if all(v is not None for v in per_seed[m]) else
                                    float(np.mean([100.0 * (1.0 - f) for f, v in zip(final[m], per_seed[m]) if v is None])))
                                for m in methods},
        "nsga2_max_asks": max_asks,   # the cap of every Optuna sampler's asks
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
        methods=METHODS, max_asks: int = MAX_ASKS, log=print) -> list[dict]:
    """All levels; writes ``robustness`` into `details_path` and the plot beside it.
    `measured` is a file for :func:`load_measured` or what it returned."""
    keys = space.order_keys()
    entries, curves = [], {}
    for level in levels(measured if isinstance(measured, dict) else load_measured(measured)):
        entry, mean_curves = run_level(level, space, keys, encodings, seeds, window_hi, methods, max_asks, log)
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
