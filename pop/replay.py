"""Every search method replays a table of real trainings (``make bench-pop`` → ``real_table``).

The table (``bench/pop_table/``, made by ``make pop-table``) holds every model of the POP demo's
space trained under two seeds, and the LUT its latencies come from.  Nothing is simulated:

* what a search *sees* when it trains a model is one seed's accuracy, read through the CSV
  evaluator (``csv:table.csv#accuracy_seedN``); search seed k sees table seed k mod 2, so the
  20 searches meet both trainings' noise;
* a search is *scored* on the mean of the seeds (the model's worth, which a second training
  scatters around): hypervolume after each training, latency ↓ and accuracy ↑ against
  (the slowest model's latency, the lowest mean accuracy), as a share of all of Ŝ's.

Per method (the robustness table's: ``pop.search_loop.METHODS``): trainings to 99 % of the
exhaustive hypervolume (mean over the seeds, null when a seed never got there within |Ŝ|),
the hypervolume regret at a small budget (20 % of |Ŝ|: what a user who stops early is left
with), per-seed counts and the verdict of :func:`pop.robustness.verdict` (best POP variant
against NSGA-II and against TPE, Optuna's default sampler).  Only models trained under every
seed take part (a table still being made replays on what it has, and says how many).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optuna

from .algorithm import hypervolume
from .evaluators import CsvReplay
from .lut import LatencyTable
from .robustness import mean_curve, mean_or_none, merge_into_details, plot, verdict
from .search_loop import METHODS, run_method
from .space import Space
from .space_config import SpaceConfig
from .trained_table import TableError, percent, read_table_csv, table_stats

__all__ = ["DEFAULT_TABLE", "REGRET_SHARE", "ReplayTable", "load_replay", "replay", "run"]

DEFAULT_TABLE = Path("bench/pop_table")
REGRET_SHARE = 0.2       # the early-stop budget of hv_regret_at_budget, as a share of |Ŝ|
DEFAULT_SEEDS = 20
# An Optuna sampler's draws per search (a repeated draw is told its known result and is no
# training).  On a space of ~100 models Optuna's TPE keeps re-drawing the models it already
# holds: at 10,000 draws (the robustness table's cap, on 10^4 models) one search took minutes
# (~50 ms per draw past 1,000 trials).  8 draws per model of the table is where it stops here;
# ``trainings_run_per_seed`` says how many models each search had trained by then.
REPLAY_MAX_ASKS = 1_000


class ReplayTable:
    """Ŝ restricted to the fully trained models, with each table seed's accuracies and their mean."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        csv_path = self.directory / "table.csv"
        table = read_table_csv(csv_path)
        self.stats = table_stats(table)
        full = table.complete()
        if len(full) < 2:
            raise TableError(f"{csv_path}: {len(full)} models trained under every seed; a replay needs 2 at least "
                             "(make pop-table)")
        space = Space.enumerate(SpaceConfig.load(self.directory / "space.yaml"),
                                LatencyTable.load(self.directory / "lut.json"))
        rows = [i for i in range(space.size) if space.encoding(i) in full]
        if len(rows) != len(full):
            missing = sorted(set(full) - set(space.encodings(rows)))
            raise TableError(f"{csv_path}: {len(missing)} models are not in the space of "
                             f"{self.directory / 'space.yaml'} (e.g. {missing[0]})")
        self.space = Space(space.config, space.counts[rows], space.latency[rows])
        self.keys = self.space.order_keys()   # the partial order's coordinates, for every search
        self.encodings = self.space.encodings()
        self.seeds = table.seeds
        self.seen = {s: self._column(csv_path, s) for s in table.seeds}
        self.truth = np.mean([self.seen[s] for s in table.seeds], axis=0)
        self.size, self.planned = self.space.size, len(table.latency_ms)

    def _column(self, csv_path: Path, seed: int) -> np.ndarray:
        evaluator = CsvReplay(csv_path, column=f"accuracy_seed{seed}")
        return np.array([evaluator.evaluate(e, None) for e in self.encodings])


def load_replay(directory: Path = DEFAULT_TABLE) -> ReplayTable:
    return ReplayTable(directory)


def _one_seed(table: ReplayTable, seed: int, methods, ref, exhaustive, regret_budget: int, max_asks: int) -> dict:
    """{method: (trainings to 99 % within |Ŝ|, HV regret % after ``regret_budget`` trainings, HV
    curve)}.  The curve of a search run to the target holds the HV at the budget unless the
    search reached the target sooner; only then does a second search (same seed, so the same
    draws) run on to the budget."""
    acc = table.seen[table.seeds[seed % len(table.seeds)]]
    keys = table.keys
    out = {}
    for m in methods:
        run = run_method(m, table.space, keys, acc, table.truth, seed, table.size, ref, exhaustive, max_asks)
        curve = run["curve"]
        if run["trainings"] is not None and len(curve) < regret_budget:
            curve = run_method(m, table.space, keys, acc, table.truth, seed, regret_budget, ref, exhaustive,
                               max_asks, target=1.0)["curve"]
        at_budget = float(curve[min(regret_budget, len(curve)) - 1]) if len(curve) else 0.0
        out[m] = (run["trainings"], 100.0 * (1.0 - at_budget), run["curve"])
    return out


def replay(table: ReplayTable, seeds: int = DEFAULT_SEEDS, methods=METHODS, max_asks: int = REPLAY_MAX_ASKS,
           log=print) -> tuple[dict, dict]:
    """(the ``real_table`` entry of ``pop_details.json``, the mean HV curve per method)."""
    ref = (float(table.space.latency.max()), float(table.truth.min()))
    exhaustive = hypervolume(table.space.latency, table.truth, *ref)
    regret_budget = max(1, round(REGRET_SHARE * table.size))
    per_seed = {m: [] for m in methods}
    regret = {m: [] for m in methods}
    curves = {m: [] for m in methods}
    for seed in range(seeds):
        t = time.perf_counter()
        for m, (n, r, c) in _one_seed(table, seed, methods, ref, exhaustive, regret_budget, max_asks).items():
            per_seed[m].append(n)
            regret[m].append(r)
            curves[m].append(c)
        log(f"  real table seed {seed} (sees seed {table.seeds[seed % len(table.seeds)]}): trainings to 99 % HV: "
            + ", ".join(f"{m} {per_seed[m][-1]}" for m in methods) + f" ({time.perf_counter() - t:.0f} s)")
    entry = {"models": table.size, "models_planned": table.planned, "seeds": seeds, "table_seeds": list(table.seeds),
             "seed_noise_pct": table.stats["seed_noise_pct"], "inverted_pairs_pct": table.stats["inverted_pairs_pct"],
             "inverted_pairs_pct_on_mean": table.stats["inverted_pairs_of_mean"]["inverted_pairs_pct"],
             "trainings_to_99pct": {m: mean_or_none(per_seed[m]) for m in methods},
             "trainings_to_99pct_per_seed": per_seed,
             "trainings_run_per_seed": {m: [len(c) for c in curves[m]] for m in methods},
             "hv_regret_at_budget": {m: float(np.mean(regret[m])) for m in methods},
             "hv_regret_budget": regret_budget,
             "reference_point": {"latency_ms": ref[0], "accuracy": ref[1]},
             "scoring": "HV of the trained models at the mean accuracy over the table's seeds; "
                        "a search sees one seed (search seed k: table seed k mod 2)",
             "max_asks": max_asks, "optuna_version": optuna.__version__, "table": str(table.directory)}
    entry.update(verdict(per_seed))
    return entry, {m: mean_curve(curves[m], table.size) for m in methods}


def table_row(entry: dict) -> str:
    t = entry["trainings_to_99pct"]
    cells = ", ".join(f"{m} {'—' if v is None else f'{v:.1f}'}" for m, v in t.items())
    return (f"real table ({entry['models']} models, seed noise {entry['seed_noise_pct']:.2f} %, "
            f"{percent(entry['inverted_pairs_pct'])} of comparable pairs inverted): trainings to 99 % HV: {cells}")


def run(directory: Path, details_path: Path, seeds: int = DEFAULT_SEEDS, methods=METHODS,
        max_asks: int = REPLAY_MAX_ASKS, log=print) -> dict:
    """Replay the table in ``directory``; writes ``real_table`` into ``details_path`` (keeping its
    other keys) and ``pop_real_table.png`` beside it."""
    table = load_replay(directory)
    log(f"real table: {table.size} of {table.planned} models trained under seeds {list(table.seeds)} "
        f"({directory}); {seeds} searches per method")
    entry, curves = replay(table, seeds, methods, max_asks, log)
    title = (f"table of real trainings: {entry['models']} models, {seeds} searches each\nseed noise "
             f"{entry['seed_noise_pct']:.2f} %, "
             f"{percent(entry['inverted_pairs_pct'])} of comparable pairs inverted")
    entry["plot"] = str(plot({"real_table": (title, curves)}, details_path.with_name("pop_real_table.png")))
    merge_into_details(details_path, entry, key="real_table")
    log(table_row(entry))
    return entry
