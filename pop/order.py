"""The partial order on architectures (paper Section 3.3, Fig. 4).

The paper's assumption: an architecture that is *shallower with the same widths*, or
*narrower at the same depth*, is less accurate (and faster).  We write ``x ≺ y`` for the
transitive closure of those two base relations, stage by stage:

    x ≺ y  ⇔  x ≠ y and y can be reached from x by adding blocks and widening blocks
              inside each stage (stem and stage count fixed).

Fig. 4 examples (stages written as width lists; one stage shown)::

    (64, 64)        ≺ (64, 64, 64)        shallower, same widths      (add a block)
    (64, 64, 64)    ≺ (64, 64, 128)       narrower, same depth        (widen a block)
    (64, 64)        ≺ (64, 128, 128)      closure: add, then widen
    (64, 128)       ⊀ (64, 64, 64)  and  (64, 64, 64) ⊀ (64, 128)   incomparable

Because widths never decrease inside a stage, the removal-and-narrowing test has a closed
form: stage a (sorted, length p) reaches stage b (sorted, length q) iff p <= q and a[i] <=
b[q - p + i] for all i (compare a with b's p widest blocks).  Equivalently, for every width
threshold t, a has no more blocks of width >= t than b.  So with the *suffix counts*
``S[s, k] = #{blocks of stage s with choice >= k}``

    x ≼ y  ⇔  S(x) <= S(y) elementwise,

which is a product order (hence reflexive, antisymmetric, transitive) and turns every
precedent look-up over Ŝ into one vectorised comparison of a ``uint8`` matrix.

Decoder width-controller settings ``[C3, C4, C5]`` are ordered elementwise (narrower ≺
wider); that is the same construction with one "block" per controller.
"""
from __future__ import annotations

import numpy as np

from prototxt_gen.encoding import Backbone


def _le(x: Backbone, y: Backbone) -> bool:
    for a, b in zip(x.stages, y.stages):
        p, q = len(a), len(b)
        if p > q:
            return False
        # widths (and for bottlenecks mid and out) must each be <= on the matched blocks
        for u, v in zip(a, b[q - p:]):
            if type(u) is not type(v) or any(wu > wv for wu, wv in zip(u.widths, v.widths)):
                return False
    return True


def precedes(x: Backbone, y: Backbone) -> bool:
    """x ≺ y on typed backbones (the reference definition; tests compare it with the
    vectorised form and with the closure of the two base relations)."""
    return x != y and _le(x, y)


def comparable_pairs_among(nets) -> list[tuple[int, int]]:
    """Every (i, j), i != j, with nets[i] ≺ nets[j]: all of them, for the few hundred trained
    models a check looks at (``pop.noise.comparable_pairs`` samples a whole Ŝ instead)."""
    return [(i, j) for i, a in enumerate(nets) for j, b in enumerate(nets) if i != j and precedes(a, b)]


def suffix_counts(counts: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """Per stage, reverse cumulative sums of the count vectors (the order's coordinates)."""
    counts = np.asarray(counts)
    out = np.empty_like(counts)
    for s in range(len(offsets) - 1):
        block = counts[..., offsets[s]:offsets[s + 1]]
        out[..., offsets[s]:offsets[s + 1]] = np.cumsum(block[..., ::-1], axis=-1)[..., ::-1]
    return out


def predecessors_mask(keys: np.ndarray, w: int) -> np.ndarray:
    """Boolean mask over Ŝ of every m with m ≺ w (strict)."""
    le = np.all(keys <= keys[w], axis=1)
    le[w] = False
    return le


def successors_mask(keys: np.ndarray, w: int) -> np.ndarray:
    ge = np.all(keys >= keys[w], axis=1)
    ge[w] = False
    return ge
