"""Order-violation noise for the POP robustness benchmark (:mod:`pop.robustness`, run by
``make bench-pop``).

POP prunes on the assumption m ≺ w ⇒ acc(m) <= acc(w).  Real training breaks it: ``make
pop-demo`` found 26.97 % of its trained comparable pairs inverted (``pop/measured_order.json``).
To ask whether pruning still pays, the benchmark adds Gaussian noise (:func:`noisy`) to the
surrogate's noiseless accuracies, at a scale (:func:`sigma_for_share`) chosen so that a *target
share of comparable pairs* (:func:`comparable_pairs`) *is inverted* (:func:`inverted_share`) -
the quantity a user can measure on their own trained pairs - rather than at a raw sigma.
"""
from __future__ import annotations

import numpy as np


def comparable_pairs(keys: np.ndarray, n_pairs: int, seed: int) -> np.ndarray:
    """Up to n_pairs (m, w) index pairs with m ≺ w, drawn uniformly from random probes
    (suffix-count product order, see pop.order)."""
    rng = np.random.default_rng(seed)
    keys = np.asarray(keys)
    pairs = []
    # probing random pairs is unbiased over comparable pairs; cap the tries so a space
    # with almost no comparable pairs still returns quickly
    for _ in range(200):
        a = rng.integers(0, len(keys), 4096)
        b = rng.integers(0, len(keys), 4096)
        le = np.all(keys[a] <= keys[b], axis=1) & (a != b)
        pairs.append(np.stack([a[le], b[le]], axis=1))
        if sum(len(p) for p in pairs) >= n_pairs:
            break
    return np.concatenate(pairs)[:n_pairs]


def inverted_share(acc: np.ndarray, pairs: np.ndarray) -> float:
    """Fraction of comparable pairs (m ≺ w) whose accuracies violate the order."""
    if len(pairs) == 0:
        raise ValueError("no comparable pairs to measure the order on")
    acc = np.asarray(acc)
    return float(np.mean(acc[pairs[:, 0]] > acc[pairs[:, 1]]))


def noisy(acc: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return np.asarray(acc) + np.random.default_rng(seed).normal(0.0, sigma, len(acc))


def sigma_for_share(acc, pairs, target: float, seed: int, iters: int = 40) -> float:
    """Noise scale whose draw (same seed) inverts `target` of the comparable pairs;
    bisection on a log scale (the share grows with sigma, up to ~0.5)."""
    if target <= inverted_share(acc, pairs):
        return 0.0
    if target >= 0.5:
        raise ValueError(f"target inverted share {target} must be < 0.5 (0.5 is no order at all)")
    spread = float(np.ptp(acc)) or 1.0
    lo, hi = spread * 1e-6, spread * 1e3
    for _ in range(iters):
        mid = float(np.sqrt(lo * hi))
        if inverted_share(noisy(acc, mid, seed), pairs) < target:
            lo = mid
        else:
            hi = mid
    return hi
