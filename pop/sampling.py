"""Where Algorithm 1 draws its next model from Ŝ \\ (P ∪ D).

The paper samples "from Ŝ \\ P" and says no more; ``uniform`` does that (the first row of a
seeded permutation that is neither pruned nor trained).  Uniform draws spend most trainings
far from the speed/accuracy boundary: pruning removes what a trained model settles, but a
model with no trained successor is never settled, however poor its trade-off.

``boundary`` keeps the pruning rule and the set it prunes, and only changes the draw: with
probability ``local_share`` it picks a model of the current boundary B(D) at random and
trains an unsettled model nearest to it in the order's coordinates (L1 distance between
suffix counts: one step adds a block or widens one), ties broken at random; otherwise it
draws uniformly as above.  The local draws refine the boundary where it is; the uniform
ones keep finding the regions it has not reached (a boundary model's neighbourhood is all
the local draws ever see).  On the bench space this halves the trainings to 99 % of the
exhaustive hypervolume (``make bench-pop``, ``docs/pop.md``).

Each draw is a function of (seed, |D|, the state): a study replays it exactly.
"""
from __future__ import annotations

import numpy as np

SAMPLINGS = ("uniform", "boundary")
DEFAULT_LOCAL_SHARE = 0.5


def check_sampling(sampling: str, local_share: float) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r} (choose from {', '.join(SAMPLINGS)})")
    if not 0.0 < local_share <= 1.0:
        raise ValueError(f"local share must be in (0, 1], got {local_share}")


def draw_rng(seed: int, trained: int) -> np.random.Generator:
    """The generator of the draw after `trained` trainings (independent of how we got there)."""
    return np.random.default_rng([abs(int(seed)), int(trained), 0x5A3])


def nearest_group(keys: np.ndarray, free: np.ndarray, centre: int, rng: np.random.Generator) -> np.ndarray:
    """The free rows at the smallest L1 distance from row `centre` in the order's coordinates,
    in a random order."""
    rows = np.flatnonzero(free)
    if rows.size == 0:
        return rows
    distance = np.abs(keys[rows].astype(np.int32) - keys[centre].astype(np.int32)).sum(axis=1)
    group = rows[distance == distance.min()]
    return rng.permutation(group)


def local_draw(keys: np.ndarray, free: np.ndarray, boundary: tuple[int, ...], seed: int, trained: int,
               local_share: float) -> np.ndarray:
    """Rows to try first for the draw after `trained` trainings: a nearest group around one
    boundary model, or nothing when this draw is a uniform one (or there is no boundary yet)."""
    if not boundary:
        return np.zeros(0, np.int64)
    rng = draw_rng(seed, trained)
    if rng.random() >= local_share:
        return np.zeros(0, np.int64)
    centre = boundary[int(rng.integers(len(boundary)))]
    return nearest_group(keys, free, centre, rng)
