"""Algorithm 1 of the paper (Partial Order Pruning), exactly, on arrays.

    repeat
        sample x from Ŝ \\ P                       (here: the next not-yet-covered row of a
                                                    seeded permutation of Ŝ, see below, or
                                                    near the boundary: pop.sampling)
        train x;  D ← D ∪ {x}
        for w in D:
            y_w  = argmin_{y ∈ D, Acc(y) ≥ Acc(w)} Lat(y)
            ΔP_w = {m ∈ Ŝ | m ≺ w, Lat(m) ≥ Lat(y_w)}
            P    ← P ∪ ΔP_w
    until the boundary B(D) (Eq. 6: the models of D not dominated in latency↓/accuracy↑)
          has not changed for K iterations

Sampling.  A uniform draw from Ŝ \\ P is taken as "the first row of a seeded random
permutation of Ŝ that is neither pruned nor trained".  That is still uniform over what
remains, and it makes the whole run a function of (seed, results): a multi-worker run that
replays its completed trials in this order reproduces the single-worker run exactly.

Incremental update.  ΔP_w only grows as Lat(y_w) falls, and Lat(y_w) only changes when the
new model x has Acc(x) ≥ Acc(w) and Lat(x) < Lat(y_w).  So after adding x we recompute ΔP_w
only for those w (and for x itself); P is the same set the full loop would produce.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .order import predecessors_mask
from .sampling import DEFAULT_LOCAL_SHARE, check_sampling, local_draw


def permutation(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(size)


def pareto_front(latency: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices (into the given arrays) of the points not dominated in (latency↓, accuracy↑),
    sorted by latency (Eq. 6).  Ties: identical points are all kept."""
    latency = np.asarray(latency, float)
    accuracy = np.asarray(accuracy, float)
    if latency.size == 0:
        return np.zeros(0, int)
    order = np.lexsort((-accuracy, latency))  # by latency, then best accuracy first
    keep = []
    best = -np.inf
    last = None
    for i in order:
        a, l = accuracy[i], latency[i]
        if a > best:
            keep.append(i)
            best = a
            last = (l, a)
        elif last is not None and (l, a) == last:
            keep.append(i)
    return np.asarray(keep, int)


def hypervolume(latency: np.ndarray, accuracy: np.ndarray, ref_latency: float, ref_accuracy: float) -> float:
    """Area dominated by the points, bounded by (ref_latency, ref_accuracy)."""
    front = pareto_front(latency, accuracy)
    area = 0.0
    lat = np.asarray(latency, float)[front]
    acc = np.asarray(accuracy, float)[front]
    for k in range(len(front)):
        if lat[k] > ref_latency:
            break
        right = ref_latency if k + 1 == len(front) else min(lat[k + 1], ref_latency)
        area += max(right - lat[k], 0.0) * max(acc[k] - ref_accuracy, 0.0)
    return area


class HypervolumeTracker:
    """Hypervolume of a growing set of points, recomputed from its Pareto front after each add
    (benchmarks: hypervolume against the number of trainings)."""

    def __init__(self, ref_latency: float, ref_accuracy: float):
        self.ref = (ref_latency, ref_accuracy)
        self.lat: list[float] = []
        self.acc: list[float] = []

    def add(self, latency: float, accuracy: float) -> float:
        self.lat.append(latency)
        self.acc.append(accuracy)
        front = pareto_front(np.array(self.lat), np.array(self.acc))
        self.lat = [self.lat[i] for i in front]
        self.acc = [self.acc[i] for i in front]
        return hypervolume(np.array(self.lat), np.array(self.acc), *self.ref)


@dataclasses.dataclass
class Step:
    """What one iteration did (for reports: Fig. 8a/8b)."""

    index: int            # row of Ŝ that was trained
    accuracy: float
    pruned_now: int       # |P| growth caused by this iteration
    precedents: int       # |{m ∈ Ŝ | m ≺ x}| (Fig. 8b)
    boundary_changed: bool
    pruned_untrained: int = 0   # |P \ D| after this iteration (Fig. 8a)
    covered: int = 0            # |P ∪ D| after this iteration


class PartialOrderPruning:
    """State of Algorithm 1 over a fixed Ŝ (order keys + latencies)."""

    def __init__(self, keys: np.ndarray, latency: np.ndarray, seed: int, patience: int,
                 sampling: str = "uniform", local_share: float = DEFAULT_LOCAL_SHARE):
        check_sampling(sampling, local_share)
        self.sampling = sampling
        self.local_share = local_share
        self.seed = seed
        self.keys = keys
        self.latency = np.asarray(latency, float)
        self.size = keys.shape[0]
        self.order = permutation(self.size, seed)
        self.patience = patience
        self.pruned = np.zeros(self.size, bool)
        self.trained = np.zeros(self.size, bool)
        self.pruned_by = np.full(self.size, -1, np.int64)  # which trained model pruned each row first
        self.D: list[int] = []
        self.acc: dict[int, float] = {}
        self.threshold: dict[int, float] = {}  # Lat(y_w)
        self.cursor = 0
        self.unchanged = 0
        self.boundary: tuple[int, ...] = ()
        self.steps: list[Step] = []
        # y_w must beat w by this much before w's precedents are pruned (0 = the paper's rule;
        # pop.noise_aware raises it when trained pairs violate the order)
        self.margin = 0.0
        self.version = 0            # bumped whenever P or D changes (the local draw's cache key)
        self._local: tuple[int, np.ndarray] | None = None

    # -- sampling ---------------------------------------------------------------------
    def candidates(self, exclude: set[int] = frozenset()):
        """Rows of Ŝ \\ (P ∪ D) in sampling order, skipping `exclude` (claimed elsewhere):
        this draw's local group (``boundary`` sampling), then permutation order."""
        local = self._local_rows()
        for i in local:
            if int(i) not in exclude:
                yield int(i)
        rest = self.order[self.cursor:]
        for i in rest[~(self.pruned[rest] | self.trained[rest])]:  # vectorised: Ŝ may hold 10^6
            if int(i) not in exclude and (local.size == 0 or not np.any(local == i)):
                yield int(i)

    def _local_rows(self) -> np.ndarray:
        if self.sampling == "uniform":
            return np.zeros(0, np.int64)
        if self._local is None or self._local[0] != self.version:
            free = ~(self.pruned | self.trained)
            self._local = (self.version, local_draw(self.keys, free, self.boundary, self.seed, len(self.D),
                                                    self.local_share))
        return self._local[1]

    def next_candidate(self) -> int | None:
        local = self._local_rows()
        if local.size:
            return int(local[0])
        while self.cursor < self.size:
            i = int(self.order[self.cursor])
            if not (self.pruned[i] or self.trained[i]):
                return i
            self.cursor += 1
        return None

    @property
    def finished(self) -> bool:
        return self.unchanged >= self.patience or self.next_candidate() is None

    # -- one iteration ------------------------------------------------------------------
    def add(self, x: int, accuracy: float) -> Step:
        if self.trained[x]:
            raise ValueError(f"row {x} of Ŝ was already trained")
        before = int(self.pruned.sum())
        self.trained[x] = True
        self.D.append(x)
        self.acc[x] = float(accuracy)
        lat_x = self.latency[x]
        # y_x = fastest trained model at least as accurate as x (x itself qualifies when the
        # margin is 0; with a margin there may be none yet: no threshold, nothing pruned)
        self.threshold[x] = min([self.latency[y] for y in self.D if self.acc[y] >= accuracy + self.margin],
                                default=np.inf)
        affected = [x] + [w for w in self.D[:-1]
                          if accuracy >= self.acc[w] + self.margin and lat_x < self.threshold[w]]
        for w in affected:
            if w != x:
                self.threshold[w] = lat_x
            if np.isfinite(self.threshold[w]):
                self._prune_below(w, self.threshold[w])
        self.version += 1
        boundary = self._boundary()
        changed = boundary != self.boundary
        self.boundary = boundary
        self.unchanged = 0 if changed else self.unchanged + 1
        precedents = int(predecessors_mask(self.keys, x).sum())
        step = Step(x, float(accuracy), int(self.pruned.sum()) - before, precedents, changed,
                    self.pruned_not_trained, int((self.pruned | self.trained).sum()))
        self.steps.append(step)
        return step

    def _prune_below(self, w: int, threshold: float) -> None:
        delta = predecessors_mask(self.keys, w) & (self.latency >= threshold)
        new = delta & ~self.pruned
        self.pruned_by[new] = w
        self.pruned |= delta

    def _boundary(self) -> tuple[int, ...]:
        d = np.asarray(self.D)
        front = pareto_front(self.latency[d], np.asarray([self.acc[i] for i in self.D]))
        return tuple(sorted(int(d[k]) for k in front))

    # -- summaries ---------------------------------------------------------------------
    @property
    def pruned_not_trained(self) -> int:
        return int((self.pruned & ~self.trained).sum())


def run(keys, latency, evaluate, seed: int, patience: int, budget: int | None = None,
        progress=None, sampling: str = "uniform") -> PartialOrderPruning:
    """Single-process Algorithm 1 with `evaluate(row) -> accuracy`."""
    state = PartialOrderPruning(keys, latency, seed, patience, sampling=sampling)
    while not state.finished and (budget is None or len(state.D) < budget):
        x = state.next_candidate()
        state.add(x, evaluate(x))
        if progress is not None:
            progress(state)
    return state
