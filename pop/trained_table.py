"""A table of trainings: every model of a small space, its latency and its accuracy under
several seeds (``table.csv``: ``encoding,latency_ms,accuracy_seed0,accuracy_seed1,...``; a
cell is empty until its training finished).

The data structure, its CSV form and what the table itself says about the noise a search meets
(:func:`table_stats`).  ``solvers.real_table`` fills one with real trainings (``make
pop-table``); :mod:`pop.replay` lets every search method replay it (``make bench-pop``).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from dfseg.base.errors import InputError
from dfseg.base.textfile import read_text
from prototxt_gen.encoding import parse_backbone

from .order import comparable_pairs_among

__all__ = ["TableError", "TrainedTable", "inverted_share", "percent", "read_table_csv", "table_stats"]


class TableError(InputError, ValueError):
    pass


@dataclass
class TrainedTable:
    """encoding -> latency and {seed: accuracy}; the order of ``encodings`` is the order trained."""

    seeds: tuple[int, ...]
    latency_ms: dict[str, float] = field(default_factory=dict)
    accuracy: dict[str, dict[int, float]] = field(default_factory=dict)

    def done(self, encoding: str, seed: int) -> bool:
        return seed in self.accuracy.get(encoding, {})

    def complete(self) -> dict[str, dict[int, float]]:
        """The models trained under every seed."""
        return {e: a for e, a in self.accuracy.items() if all(s in a for s in self.seeds)}

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["encoding", "latency_ms"] + [f"accuracy_seed{s}" for s in self.seeds])
        for enc, lat in self.latency_ms.items():
            accs = self.accuracy.get(enc, {})
            w.writerow([enc, f"{lat:.6f}"] + [f"{accs[s]:.6f}" if s in accs else "" for s in self.seeds])
        return buf.getvalue()


def read_table_csv(path: str | Path) -> TrainedTable:
    """The table of a ``table.csv`` (its seeds from the header)."""
    rows = list(csv.reader(read_text(path, "table of trainings (CSV)").splitlines()))
    if not rows or rows[0][:2] != ["encoding", "latency_ms"]:
        raise TableError(f"{path}: expected a header encoding,latency_ms,accuracy_seed0,...")
    try:
        seeds = tuple(int(h.removeprefix("accuracy_seed")) for h in rows[0][2:])
    except ValueError:
        raise TableError(f"{path}: header {rows[0]!r}: accuracy columns are named accuracy_seedN") from None
    table = TrainedTable(seeds)
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise TableError(f"{path}:{n}: {len(row)} fields, the header has {len(rows[0])}")
        try:
            table.latency_ms[row[0]] = float(row[1])
            table.accuracy[row[0]] = {s: float(v) for s, v in zip(seeds, row[2:]) if v}
        except ValueError as e:
            raise TableError(f"{path}:{n}: {e}") from None
    return table


# --------------------------------------------------------------------------- statistics
def percent(value: float | None) -> str:
    """A share for people: "n/a" where there was nothing to count (no comparable pair yet)."""
    return "n/a" if value is None else f"{value:.1f} %"


def inverted_share(accuracy: list[float], pairs: list[tuple[int, int]]) -> dict:
    """Of the comparable pairs (i ≺ j, :func:`pop.order.comparable_pairs_among`), how many have
    Acc(j) < Acc(i)."""
    inverted = sum(accuracy[j] < accuracy[i] for i, j in pairs)
    return {"comparable_pairs": len(pairs), "inverted": inverted,
            "inverted_pairs_pct": 100.0 * inverted / len(pairs) if pairs else None}


def table_stats(table: TrainedTable) -> dict:
    """What the table itself says about the noise a search meets.

    * seed noise: |Acc(seed a) − Acc(seed b)| over the models trained under both seeds;
    * inverted pairs: the share of comparable pairs x ≺ y with Acc(y) < Acc(x), on one seed's
      accuracies (what a search sees) and on the mean over the seeds (the model's worth)."""
    import numpy as np
    full = table.complete()
    if not full:
        return {"models": 0}
    s0, s1 = table.seeds[0], table.seeds[-1]
    diffs = np.array([abs(a[s0] - a[s1]) for a in full.values()])
    pairs = comparable_pairs_among([parse_backbone(e) for e in full])   # the same for every seed
    mean = [sum(a.values()) / len(a) for a in full.values()]
    acc = np.array(mean)
    per_seed = {str(s): inverted_share([a[s] for a in full.values()], pairs) for s in table.seeds}
    return {"models": len(full), "seeds": list(table.seeds),
            "accuracy_pct": {"min": 100 * float(acc.min()), "max": 100 * float(acc.max()),
                             "std": 100 * float(acc.std())},
            "seed_noise_pct": 100 * float(diffs.mean()), "seed_noise_max_pct": 100 * float(diffs.max()),
            "seed_noise_of": f"|Acc(seed {s0}) - Acc(seed {s1})|, mean over the models",
            "inverted_pairs_pct": per_seed[str(s0)]["inverted_pairs_pct"],
            "inverted_pairs_of": f"accuracy under seed {s0} (what one search sees)",
            "inverted_pairs_by_seed": per_seed, "inverted_pairs_of_mean": inverted_share(mean, pairs)}
