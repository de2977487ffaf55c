"""Algorithm 1 with a pruning rule that allows for the order violations it observes.

The paper's rule prunes every m ≺ w slower than y_w, the fastest trained model at least as
accurate as w.  That is safe only if Acc(m) <= Acc(w) for m ≺ w.  When training is noisy
(or the order simply does not hold everywhere), a pruned m may in truth beat y_w, and Algorithm
1 never looks at it again.

Here y_w must beat w by a *margin* δ before w prunes anything:

    y_w^δ = argmin_{y ∈ D, Acc(y) >= Acc(w) + δ} Lat(y)
    ΔP_w  = {m ∈ Ŝ | m ≺ w, Lat(m) >= Lat(y_w^δ)}

so a pruned m would have to beat its trained successor w by more than δ to escape domination.
δ is estimated from the trained models themselves: the ``quantile`` (default 0.9) of
Acc(m) − Acc(w) over every trained comparable pair m ≺ w, floored at 0.  With no violations
among the trained pairs δ = 0 and the run is exactly Algorithm 1 (same D, P, boundary).

δ is re-estimated whenever |D| has grown by a quarter since the last estimate (from 16
trained models on), and P is then rebuilt from D: a larger δ *re-admits* pruned models.  When
Ŝ \\ (P ∪ D) runs out while pruned models remain and some trained pair violates the order,
δ is doubled (at least to ``floor``) and P rebuilt again, so the search goes on to the models
the order may have excluded wrongly instead of stopping; each such escalation doubles δ for
the rest of the run.

Everything is a function of (seed, results in order), like Algorithm 1: a study replays it.
"""
from __future__ import annotations

import numpy as np

from .algorithm import PartialOrderPruning, Step
from .sampling import DEFAULT_LOCAL_SHARE

FIRST_ESTIMATE = 16     # trained models before δ is first estimated
REESTIMATE_GROWTH = 1.25
MAX_ESTIMATE_ROWS = 1024


def trained_pair_diffs(keys: np.ndarray, rows: np.ndarray, acc: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Acc(m) − Acc(w) for every ordered pair of trained rows with m ≺ w (keys <= elementwise,
    m ≠ w); positive values are violations of the partial order."""
    rows = np.asarray(rows, int)
    acc = np.asarray(acc, float)
    k = keys[rows]
    out = []
    for start in range(0, len(rows), chunk):
        block = k[start:start + chunk]
        le = np.all(block[:, None, :] <= k[None, :, :], axis=2)   # le[i, j]: rows[start+i] ≼ rows[j]
        le[np.arange(len(block)), start + np.arange(len(block))] = False
        i, j = np.nonzero(le)
        out.append(acc[start + i] - acc[j])
    return np.concatenate(out) if out else np.zeros(0)


def estimate_margin(diffs: np.ndarray, quantile: float) -> float:
    """δ: the `quantile` of Acc(m) − Acc(w) over trained pairs m ≺ w, never below 0."""
    if len(diffs) == 0:
        return 0.0
    return max(0.0, float(np.quantile(diffs, quantile)))


class NoiseAwarePruning(PartialOrderPruning):
    """Algorithm 1 with the margin δ (see the module docstring); same interface."""

    def __init__(self, keys: np.ndarray, latency: np.ndarray, seed: int, patience: int,
                 quantile: float = 0.9, floor: float = 0.001, sampling: str = "uniform",
                 local_share: float = DEFAULT_LOCAL_SHARE):
        super().__init__(keys, latency, seed, patience, sampling=sampling, local_share=local_share)
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"margin quantile must be in (0, 1), got {quantile}")
        self.quantile = quantile
        self.floor = floor
        self.estimate = 0.0        # δ from the trained pairs
        self.escalations = 0       # times Ŝ \ (P ∪ D) ran out and δ was doubled
        self.rebuilds = 0
        self._estimated_at = 0

    def _wanted_margin(self) -> float:
        if self.escalations == 0:
            return self.estimate
        return max(self.estimate, self.floor) * 2.0 ** self.escalations

    def add(self, x: int, accuracy: float) -> Step:
        step = super().add(x, accuracy)
        n = len(self.D)
        if n >= FIRST_ESTIMATE and n >= REESTIMATE_GROWTH * self._estimated_at:
            self._estimated_at = n
            self.estimate = estimate_margin(self._diffs(), self.quantile)
            if self._set_margin(self._wanted_margin()):
                step.pruned_untrained = self.pruned_not_trained
                step.covered = int((self.pruned | self.trained).sum())
        return step

    def _diffs(self) -> np.ndarray:
        rows = np.asarray(self.D)
        if len(rows) > MAX_ESTIMATE_ROWS:  # pairs grow as |D|^2: a seeded subset estimates δ as well
            rows = np.random.default_rng(len(rows)).choice(rows, MAX_ESTIMATE_ROWS, replace=False)
        return trained_pair_diffs(self.keys, rows, np.asarray([self.acc[int(i)] for i in rows]))

    def next_candidate(self) -> int | None:
        while True:
            x = super().next_candidate()
            if x is not None or not (self.pruned & ~self.trained).any():
                return x
            if self.escalations == 0 and not np.any(self._diffs() > 0):
                return None  # no trained pair violates the order: P is right, stop as Algorithm 1
            # everything left was pruned although the order is violated: it may have excluded
            # models wrongly, so widen the margin and re-admit what no longer qualifies
            self.escalations += 1
            self._set_margin(self._wanted_margin())

    def _set_margin(self, margin: float) -> bool:
        """Rebuild P for a new δ; False when δ did not change."""
        if margin == self.margin:
            return False
        self.margin = margin
        self.rebuilds += 1
        self.version += 1
        self.pruned[:] = False
        self.pruned_by[:] = -1
        d = np.asarray(self.D)
        acc = np.asarray([self.acc[i] for i in self.D])
        # threshold(w) = min latency over trained y with acc(y) >= acc(w) + δ: sort by accuracy
        # (descending), running minimum of latency, look up each w's cut
        order = np.argsort(-acc, kind="stable")
        run_min = np.minimum.accumulate(self.latency[d[order]])
        desc = -acc[order]
        for w, a in zip(d, acc):
            cut = int(np.searchsorted(desc, -(a + margin), side="right"))
            self.threshold[int(w)] = float(run_min[cut - 1]) if cut > 0 else np.inf
            if cut > 0:
                self._prune_below(int(w), self.threshold[int(w)])
        self.cursor = 0  # re-admitted rows may lie behind the cursor
        return True


RULES = ("pop", "noise-aware")


def pruning_state(rule: str, keys, latency, seed: int, patience: int, quantile: float = 0.9,
                  sampling: str = "uniform", local_share: float = DEFAULT_LOCAL_SHARE) -> PartialOrderPruning:
    """Algorithm 1's state for a pruning rule, "pop" (the paper's) or "noise-aware", drawing
    its models as `sampling` says (``pop.sampling``)."""
    if rule == "pop":
        return PartialOrderPruning(keys, latency, seed, patience, sampling=sampling, local_share=local_share)
    if rule == "noise-aware":
        return NoiseAwarePruning(keys, latency, seed, patience, quantile=quantile, sampling=sampling,
                                 local_share=local_share)
    raise ValueError(f"unknown pruning rule {rule!r} (choose from {', '.join(RULES)})")
