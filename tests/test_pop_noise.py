import numpy as np
import pytest

from pop.noise import comparable_pairs, inverted_share, noisy, sigma_for_share


def _space(seed=0, n=400, d=4):
    keys = np.random.default_rng(seed).integers(0, 5, (n, d))
    acc = keys.sum(axis=1) + 0.01 * keys[:, 0]  # strictly monotone in the product order
    return keys, acc.astype(float)


def test_pairs_are_comparable_and_order_holds_without_noise():
    keys, acc = _space()
    pairs = comparable_pairs(keys, 500, seed=1)
    assert len(pairs) == 500
    assert np.all(keys[pairs[:, 0]] <= keys[pairs[:, 1]])
    assert inverted_share(acc, pairs) == 0.0


def test_noise_inverts_more_pairs_as_sigma_grows():
    keys, acc = _space()
    pairs = comparable_pairs(keys, 2000, seed=1)
    shares = [inverted_share(noisy(acc, s, seed=3), pairs) for s in (0.1, 1.0, 10.0, 100.0)]
    assert shares == sorted(shares) and shares[0] < 0.05 and 0.4 < shares[-1] < 0.6


@pytest.mark.parametrize("target", [0.05, 0.2, 0.4])
def test_sigma_for_share_hits_the_target(target):
    keys, acc = _space()
    pairs = comparable_pairs(keys, 2000, seed=1)
    sigma = sigma_for_share(acc, pairs, target, seed=3)
    assert abs(inverted_share(noisy(acc, sigma, seed=3), pairs) - target) < 0.01


def test_sigma_for_share_rejects_no_order():
    keys, acc = _space()
    with pytest.raises(ValueError):
        sigma_for_share(acc, comparable_pairs(keys, 100, seed=1), 0.5, seed=0)
