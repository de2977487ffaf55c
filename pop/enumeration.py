"""Enumerating Ŝ: every backbone of a :class:`~pop.space_config.SpaceConfig` whose estimated
latency lies in [Tmin, Tmax], as count rows (see :mod:`pop.space` for the representation).

Enumeration never walks all sequences: it builds each stage's sequences depth-first, cutting
a subtree as soon as the latency already spent plus a lower bound of the cheapest possible
completion exceeds Tmax (adding blocks only adds latency; the cheapest completion of wider
choices is bounded by a suffix minimum, which is how width monotonicity is used without
trusting every LUT entry to be monotone), and then joins the stages with sorted latency
ranges (``searchsorted``) instead of nested loops.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from prototxt_gen.encoding import Backbone, Block, EncodingError

from .estimate import STEM_OUT, LatencyModel, estimate_backbone, stage_resolutions
from .space_config import SpaceConfig, may_follow

__all__ = ["brute_force", "enumerate_rows"]


def enumerate_rows(config: SpaceConfig, lut: LatencyModel) -> tuple[np.ndarray, np.ndarray]:
    """(counts, latency) of every architecture in the window, in no particular order."""
    return _Enumerator(config, lut).run()


@dataclasses.dataclass
class _StageTable:
    """All sequences of one stage for one incoming block: count rows, latency, last choice."""

    counts: np.ndarray      # (n, choices) uint8
    latency: np.ndarray     # (n,) float64, sorted ascending
    last: np.ndarray        # (n,) int, index of the last (widest) choice


# Prefixes of the join: per group of prefixes ending in the same block, their count rows
# (m x columns so far), their latency so far (m,) and that last block (None = the stem).
_Prefixes = tuple[list[np.ndarray], list[np.ndarray], list[Block | None]]


class _Enumerator:
    """One enumeration: the config, the latency model and the bounds memoised for this run
    (the caches are per instance, so they die with the enumeration)."""

    def __init__(self, config: SpaceConfig, lut: LatencyModel):
        self.config = config
        self.lut = lut
        self.sizes = stage_resolutions(config.input_size)
        self.stages = config.stages
        self.n_stages = len(self.stages)
        self.stem = lut.stem(config.input_size)
        self._head: dict[int, float] = {}  # last block's width -> head latency
        self.step = functools.lru_cache(maxsize=None)(self._step)
        self.finish = functools.lru_cache(maxsize=None)(self._finish)
        self.stage_table = functools.lru_cache(maxsize=None)(self._stage_table)
        self.suffix_min_step = functools.lru_cache(maxsize=None)(self._suffix_min_step)

    # ------------------------------------------------------------------ latency pieces
    def head_of(self, blk: Block | None) -> float:
        key = blk.out
        if key not in self._head:
            self._head[key] = self.lut.head(key, self.sizes[-1], self.config.num_classes)
        return self._head[key]

    def _step(self, s: int, previous: Block | None, j: int, first: bool) -> float:
        """Latency of choice j of stage s after block `previous` (None = the stem)."""
        blk = self.stages[s].choices[j]
        channels = STEM_OUT if previous is None else previous.out
        return self.lut.block(blk, channels, self.sizes[s] if first else self.sizes[s + 1], 2 if first else 1,
                              first or blk != previous)

    def allowed(self, s: int, previous: Block | None, min_j: int) -> list[int]:
        choices = self.stages[s].choices
        return [j for j in range(min_j, len(choices)) if may_follow(previous, choices[j])]

    # ------------------------------------------------------------------ lower bounds
    def _finish(self, s: int, need: int, previous: Block | None, j_prev: int, first: bool) -> float:
        """Exact minimum of the latency still to come: at least `need` more blocks in stage s
        (choices >= j_prev), every later stage at its minimum depth, then the head.  Extra
        blocks only add latency, so the minimum never adds more than it must."""
        if s == self.n_stages:
            return self.head_of(previous)
        if need <= 0 and not first:
            next_need = self.stages[s + 1].min_depth if s + 1 < self.n_stages else 0
            return self.finish(s + 1, next_need, previous, 0, True)
        best = float("inf")
        for j in self.allowed(s, previous, j_prev):
            best = min(best, self.step(s, previous, j, first)
                       + self.finish(s, need - 1, self.stages[s].choices[j], j, False))
        return best

    def rest_after(self, s: int, blk: Block) -> float:
        """Cheapest completion of the network after stage s ended with `blk`."""
        if s + 1 < self.n_stages:
            return self.finish(s + 1, self.stages[s + 1].min_depth, blk, 0, True)
        return self.head_of(blk)

    def _suffix_min_step(self, s: int, previous: Block | None, j: int, first: bool, depth: int) -> float:
        """Cheapest next block of choice >= j plus the cheapest completion after it."""
        spec = self.stages[s]
        need_after = max(spec.min_depth - depth - 1, 0)
        best = float("inf")
        for k in self.allowed(s, previous, j):
            best = min(best, self.step(s, previous, k, first) + self.finish(s, need_after, spec.choices[k], k, False))
        return best

    # ------------------------------------------------------------------ one stage
    def _stage_table(self, s: int, previous: Block | None, budget: float) -> _StageTable:
        """Per stage and incoming block: all sequences whose own cost fits the budget that
        remains even after the cheapest possible remainder of the network."""
        spec = self.stages[s]
        rows: list[list[int]] = []
        lats: list[float] = []
        lasts: list[int] = []
        counts = [0] * len(spec.choices)

        def walk(prev_blk: Block | None, j_min: int, depth: int, spent: float) -> None:
            first = depth == 0
            if depth >= spec.min_depth and spent + self.rest_after(s, prev_blk) <= budget:
                rows.append(counts.copy())
                lats.append(spent)
                lasts.append(j_min)
            if depth == spec.max_depth:
                return
            for j in self.allowed(s, prev_blk, j_min):
                # width monotonicity: if even the cheapest completion from choice >= j is over
                # budget, every wider choice is too: stop this loop (cuts all their subtrees)
                if spent + self.suffix_min_step(s, prev_blk, j, first, depth) > budget:
                    break
                cost = self.step(s, prev_blk, j, first)
                counts[j] += 1
                walk(spec.choices[j], j, depth + 1, spent + cost)
                counts[j] -= 1

        walk(previous, 0, 0, 0.0)
        if not rows:
            return _StageTable(np.zeros((0, len(spec.choices)), np.uint8), np.zeros(0), np.zeros(0, int))
        arr = np.asarray(rows, dtype=np.uint8)
        lat = np.asarray(lats)
        order = np.argsort(lat, kind="stable")
        return _StageTable(arr[order], lat[order], np.asarray(lasts)[order])

    # ------------------------------------------------------------------ the join
    def run(self) -> tuple[np.ndarray, np.ndarray]:
        hi = self.config.latency_ms[1]
        budget_total = hi - self.stem
        if budget_total < 0:
            return self._empty()
        prefixes: _Prefixes = ([np.zeros((1, 0), np.uint8)], [np.zeros(1)], [None])
        for s in range(self.n_stages):
            prefixes = self._join_stage(s, prefixes, budget_total)
        if not prefixes[0]:
            return self._empty()
        return self._in_window(prefixes)

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((0, self.config.offsets[-1]), np.uint8), np.zeros(0)

    def _join_stage(self, s: int, prefixes: _Prefixes, budget_total: float) -> _Prefixes:
        """Every prefix joined with every sequence of stage s that still fits."""
        new_rows, new_lat, new_last = [], [], []
        for rows, lat, last in zip(*prefixes):
            # all prefixes sharing `last` join with the same stage table
            table = self.stage_table(s, last, budget_total - float(lat.min()))
            if table.counts.shape[0] == 0:
                continue
            for j_last in np.unique(table.last):
                joined = self._join_run(s, rows, lat, table, int(j_last), budget_total)
                if joined is not None:
                    new_rows.append(joined[0])
                    new_lat.append(joined[1])
                    new_last.append(self.stages[s].choices[int(j_last)])
        # group by last block so the next stage reuses one table per group
        return _group(new_rows, new_lat, new_last)

    def _join_run(self, s: int, rows: np.ndarray, lat: np.ndarray, table: _StageTable, j_last: int,
                  budget_total: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The prefixes (rows, lat) joined with the stage sequences of `table` that end in
        choice j_last, or None when no pair fits."""
        sel = table.last == j_last
        t_counts, t_lat = table.counts[sel], table.latency[sel]
        rest = self.rest_after(s, self.stages[s].choices[j_last])
        # each prefix p may take stage sequences with lat_p + t + rest <= budget
        limit = np.searchsorted(t_lat, budget_total - rest - lat + 1e-9, side="right")  # exact filter below
        if s + 1 == self.n_stages:  # last stage: also skip everything faster than Tmin
            lo = self.config.latency_ms[0]
            first = np.searchsorted(t_lat, lo - self.stem - rest - lat - 1e-9, side="left")
        else:
            first = np.zeros_like(limit)
        count = np.maximum(limit - first, 0)
        keep = count > 0
        if not keep.any():
            return None
        p_idx = np.repeat(np.nonzero(keep)[0], count[keep])
        offsets_in_run = np.arange(p_idx.size) - np.repeat(np.cumsum(count[keep]) - count[keep], count[keep])
        t_idx = first[p_idx] + offsets_in_run
        return np.hstack([rows[p_idx], t_counts[t_idx]]), lat[p_idx] + t_lat[t_idx]

    def _in_window(self, prefixes: _Prefixes) -> tuple[np.ndarray, np.ndarray]:
        """Whole networks (stem + stages + head) with Tmin <= latency <= Tmax."""
        lo, hi = self.config.latency_ms
        rows_all, lat_all = [], []
        for rows, lat, last in zip(*prefixes):
            total = self.stem + lat + self.head_of(last)
            ok = (total >= lo) & (total <= hi)
            rows_all.append(rows[ok])
            lat_all.append(total[ok])
        return np.vstack(rows_all), np.concatenate(lat_all)


def _group(rows: list, lats: list, lasts: list) -> _Prefixes:
    by: dict = {}
    for r, l, b in zip(rows, lats, lasts):
        by.setdefault(b, ([], []))
        by[b][0].append(r)
        by[b][1].append(l)
    out_rows, out_lat, out_last = [], [], []
    for b, (rs, ls) in by.items():
        out_rows.append(np.vstack(rs))
        out_lat.append(np.concatenate(ls))
        out_last.append(b)
    return out_rows, out_lat, out_last


def brute_force(config: SpaceConfig, lut: LatencyModel) -> list[str]:
    """Every valid backbone in the window, by walking all sequences (tests only: tiny spaces)."""
    lo, hi = config.latency_ms
    per_stage = []
    for spec in config.stages:
        seqs = []
        for d in range(spec.min_depth, spec.max_depth + 1):
            seqs.extend(itertools.combinations_with_replacement(spec.choices, d))
        per_stage.append(seqs)
    out = []
    for combo in itertools.product(*per_stage):
        try:
            bb = Backbone(tuple(tuple(s) for s in combo))
        except EncodingError:
            continue
        lat = estimate_backbone(config, lut, bb)
        if lo <= lat <= hi:
            out.append(str(bb))
    return out
