"""A table of real trainings: every architecture of a small space trained with the package's own
trainer under several seeds, with its latency from a LUT measured on the same machine.

What NAS benchmarks (NAS-Bench-201, HW-NAS-Bench) gave their field, at the scale of this machine:
every search method replays the same table (``pop.bench`` through the CSV evaluator), nothing is
simulated.  The files, in one directory (``bench/pop_table/`` by default):

* ``table.csv`` — ``encoding,latency_ms,accuracy_seed0,accuracy_seed1,...``; a cell is empty
  until its training finished.  Rewritten whole (temp file, rename) after every training, so a
  killed run leaves a table that is complete up to its last finished training;
* ``table.json`` — how it was made (command, machine, task, seeds, LUT platform, seconds per
  training) and what the table itself says (``pop.trained_table.table_stats``: seed noise, inverted pairs);
* ``space.yaml`` and ``lut.json`` — the space and the LUT the latencies come from, so that a
  replay needs nothing else;
* ``table.png`` — accuracy against latency, one point per seed.

Resuming: a cell already in ``table.csv``, or a training whose ``accuracy.json`` is under the
work directory, is not trained again; a table made for another task or other seeds is refused.
"""
from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dfseg.base.atomic import atomic_save_figure, atomic_write_text
from dfseg.base.textfile import read_json
from pop.trained_table import TableError, TrainedTable, percent, table_stats

from .pop_evaluator import CaffeEvaluator, ClassificationTask

__all__ = ["TABLE_CSV", "check_resumable", "plan_order", "plot_table", "train_table", "write_table"]

TABLE_CSV, TABLE_JSON, TABLE_PNG = "table.csv", "table.json", "table.png"


def plan_order(encodings: list[str], shuffle_seed: int = 0) -> list[str]:
    """The training order: a fixed shuffle, so that a table stopped part-way is a fair sample of
    the space rather than its cheapest corner."""
    order = sorted(encodings)
    random.Random(shuffle_seed).shuffle(order)
    return order


# --------------------------------------------------------------------------- training
def train_table(table: TrainedTable, task: ClassificationTask, workdir: Path, save, workers: int = 2,
                progress: bool = True, models: int | None = None) -> int:
    """Train every missing (encoding, seed) cell of ``table`` in its order, ``workers`` at a time
    (one child process each); ``save(table)`` runs after every finished training.  A model's
    seeds are trained one after the other, so the table fills model by model.  Returns the
    number of trainings run.  ``models``: only the first that many models of the order."""
    from tqdm import tqdm
    chosen = list(table.latency_ms)[:models]
    jobs = [(e, s) for e in chosen for s in table.seeds if not table.done(e, s)]
    lock = threading.Lock()
    bar = tqdm(total=len(jobs), desc="training the table", unit="training", disable=not progress)
    index = {e: i for i, e in enumerate(table.latency_ms)}

    def one(job):
        enc, seed = job
        evaluator = CaffeEvaluator(ClassificationTask.from_dict(dict(task.to_dict(), seed=seed)))
        acc = evaluator.evaluate(enc, workdir / f"seed{seed}" / f"model_{index[enc]:04d}")
        with lock:
            table.accuracy.setdefault(enc, {})[seed] = acc
            save(table)
            bar.update()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, jobs))
    bar.close()
    return len(jobs)


# --------------------------------------------------------------------------- files
def check_resumable(out: Path, meta: dict) -> None:
    """Refuse to add to a table made for another task (its seeds are checked on its CSV's header)."""
    path = out / TABLE_JSON
    if not path.is_file():
        return
    old = read_json(path, "table description (JSON)", mapping=True)
    changed = {k for k in set(old.get("task", {})) | set(meta["task"]) if old.get("task", {}).get(k) != meta["task"].get(k)}
    if "task" in old and changed:
        what = ", ".join(f"{k} {old['task'].get(k)!r} (now {meta['task'].get(k)!r})" for k in sorted(changed))
        raise TableError(f"{path}: this table was made with another task: {what}; use another --out or remove it")


def write_table(out: Path, table: TrainedTable, meta: dict) -> dict:
    """``table.csv`` then ``table.json`` (with the statistics of what is in the CSV now, which
    it returns)."""
    atomic_write_text(out / TABLE_CSV, table.to_csv())
    done = sum(len(a) for a in table.accuracy.values())
    stats = table_stats(table)
    atomic_write_text(out / TABLE_JSON, json.dumps(dict(meta, trainings_done=done,
                                                         trainings_planned=len(table.latency_ms) * len(table.seeds),
                                                         stats=stats), indent=1) + "\n")
    return stats


def plot_table(out: Path, table: TrainedTable, stats: dict) -> Path:
    """Accuracy against latency: one marker per seed, a line between a model's seeds; ``stats``
    (:func:`pop.trained_table.table_stats` of ``table``) in the title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.6))
    markers = "os^vD"
    for k, seed in enumerate(table.seeds):
        pts = [(table.latency_ms[e], 100 * a[seed]) for e, a in table.accuracy.items() if seed in a]
        if pts:
            ax.scatter(*zip(*pts), s=14, marker=markers[k % len(markers)], alpha=0.8, label=f"seed {seed}")
    for e, a in table.complete().items():
        ys = [100 * a[s] for s in table.seeds]
        ax.plot([table.latency_ms[e]] * 2, [min(ys), max(ys)], color="0.6", lw=0.8, zorder=0)
    if stats["models"]:
        ax.set_title(f"{stats['models']} models x {len(table.seeds)} seeds: seed noise "
                     f"{stats['seed_noise_pct']:.2f} % (mean |ΔAcc|), inverted comparable pairs "
                     f"{percent(stats['inverted_pairs_pct'])}", fontsize=9)
    ax.set_xlabel("latency from the LUT [ms]")
    ax.set_ylabel("validation top-1 [%]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = atomic_save_figure(fig, out / TABLE_PNG, dpi=100)
    plt.close(fig)
    return path
