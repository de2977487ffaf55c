"""Algorithm 1: the incremental engine against a literal transcription of the paper's loop,
Eq. 6 boundary, and exactness when the partial-order assumption holds."""
from __future__ import annotations

import numpy as np
import pytest

from pop.algorithm import PartialOrderPruning, hypervolume, pareto_front, run
from pop.evaluators import Surrogate
from pop.lut import FlopsProxy
from pop.order import precedes, suffix_counts
from pop.space import Space, SpaceConfig


@pytest.fixture(scope="module")
def space():
    cfg = SpaceConfig.from_dict({"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                                            {"widths": [128, 256], "max_depth": 3},
                                            {"widths": [256, 512], "max_depth": 3}],
                                 "input_size": [224, 224], "latency_ms": [1.0, 2.0]})
    return Space.enumerate(cfg, FlopsProxy())


def literal_algorithm_1(space, acc_of, order, patience):
    """The paper's pseudo-code, word for word, on Python sets (slow, reference only)."""
    nets = [space.backbone(i) for i in range(space.size)]
    lat = space.latency
    S = set(range(space.size))
    P: set[int] = set()
    D: list[int] = []
    acc = {}
    boundary, unchanged = None, 0
    while unchanged < patience:
        remaining = [i for i in order if i in S - P - set(D)]
        if not remaining:
            break
        x = remaining[0]
        D.append(x)
        acc[x] = acc_of(x)
        for w in D:
            y_w = min((y for y in D if acc[y] >= acc[w]), key=lambda y: lat[y])
            P |= {m for m in S if precedes(nets[m], nets[w]) and lat[m] >= lat[y_w]}
        front = {y for y in D if not any((lat[z] <= lat[y] and acc[z] >= acc[y]) and
                                         (lat[z] < lat[y] or acc[z] > acc[y]) for z in D)}
        unchanged = unchanged + 1 if front == boundary else 0
        boundary = front
    return D, P, boundary


@pytest.mark.parametrize("seed, noise", [(0, 0.0), (1, 0.004), (2, 0.02)])
def test_engine_equals_literal_algorithm(space, seed, noise):
    sur = Surrogate(seed=seed, noise=noise, max_violation=noise)
    accs = {i: sur.evaluate(space.encoding(i)) for i in range(space.size)}
    keys = suffix_counts(space.counts, space.config.offsets)
    state = run(keys, space.latency, accs.__getitem__, seed=seed, patience=8)
    D, P, boundary = literal_algorithm_1(space, accs.__getitem__, list(state.order), patience=8)
    assert state.D == D
    assert set(np.nonzero(state.pruned)[0]) == P
    assert set(state.boundary) == boundary
    assert state.pruned_not_trained > 0


def test_exact_when_assumption_holds(space):
    """No noise: a pruned model is always dominated, so running until Ŝ \\ P is empty finds
    the exhaustive Pareto front while training only part of Ŝ."""
    sur = Surrogate(noise=0.0)
    acc = np.array([sur.evaluate(space.encoding(i)) for i in range(space.size)])
    keys = suffix_counts(space.counts, space.config.offsets)
    state = run(keys, space.latency, acc.__getitem__, seed=3, patience=10 ** 9)
    truth = set(pareto_front(space.latency, acc))
    assert set(state.boundary) == truth
    assert len(state.D) < space.size
    for m in np.nonzero(state.pruned & ~state.trained)[0]:
        assert any(space.latency[y] <= space.latency[m] and acc[y] > acc[m] for y in state.D)


def test_sampling_is_uniform_over_remaining(space):
    firsts = [PartialOrderPruning(np.zeros((space.size, 1)), space.latency, seed=s, patience=1).next_candidate()
              for s in range(2000)]
    counts = np.bincount(firsts, minlength=space.size)
    assert counts.max() < 20 and len(set(firsts)) > space.size * 0.9


def test_pareto_front_and_hypervolume():
    lat = np.array([1.0, 2.0, 3.0, 2.5, 1.5])
    acc = np.array([0.5, 0.7, 0.8, 0.6, 0.4])
    assert list(pareto_front(lat, acc)) == [0, 1, 2]
    # staircase: (1,.5) to 2, (2,.7) to 3, (3,.8) to 4 over ref acc 0
    assert hypervolume(lat, acc, 4.0, 0.0) == pytest.approx(0.5 + 0.7 + 0.8)


def test_training_twice_is_refused(space):
    state = PartialOrderPruning(suffix_counts(space.counts, space.config.offsets), space.latency, 0, 3)
    state.add(0, 0.5)
    with pytest.raises(ValueError, match="already trained"):
        state.add(0, 0.5)
