"""Ŝ enumeration: the pruned walk must find exactly what brute force finds."""
from __future__ import annotations

import numpy as np
import pytest

from pop.lut import FlopsProxy, backbone_keys, required_keys, table_from_model
from pop.space import Space, SpaceConfig, SpaceError, brute_force, estimate_backbone


def small(window=(1.0, 2.0), **over):
    data = {"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                       {"widths": [128, 256], "max_depth": 3},
                       {"widths": [256, 512], "max_depth": 3}],
            "input_size": [224, 224], "latency_ms": list(window)}
    data.update(over)
    return SpaceConfig.from_dict(data)


@pytest.mark.parametrize("window", [(0.0, 100.0), (1.0, 2.0), (1.5, 1.6), (0.0, 0.3)])
def test_enumeration_equals_brute_force(window):
    cfg = small(window)
    lut = FlopsProxy()
    space = Space.enumerate(cfg, lut)
    assert sorted(space.encodings()) == sorted(brute_force(cfg, lut))
    assert np.all(np.diff(space.latency) >= 0)
    for i in range(0, space.size, max(space.size // 7, 1)):
        assert space.latency[i] == pytest.approx(estimate_backbone(cfg, lut, space.backbone(i)))


def test_bottleneck_and_mixed_stages_equal_brute_force():
    cfg = SpaceConfig.from_dict({
        "stages": [{"block": "basic", "widths": [64, 128], "max_depth": 3},
                   {"block": "bottleneck", "widths": [[128, 512], [256, 1024]], "max_depth": 3},
                   {"block": "bottleneck", "widths": [[256, 1024], [512, 1024]], "min_depth": 2, "max_depth": 3}],
        "input_size": [96, 96], "latency_ms": [0.0, 1.0]})
    lut = FlopsProxy()
    space = Space.enumerate(cfg, lut)
    assert space.size > 10
    assert sorted(space.encodings()) == sorted(brute_force(cfg, lut))


def test_index_round_trip_and_outside():
    cfg = small()
    space = Space.enumerate(cfg, FlopsProxy())
    for i in (0, space.size // 3, space.size - 1):
        assert space.index(space.encoding(i)) == i
    with pytest.raises(KeyError):
        space.index("[(64),(128),(256)]")  # far below Tmin


def test_required_keys_cover_every_architecture():
    cfg = small((0.0, 100.0))
    keys = set(required_keys(cfg))
    space = Space.enumerate(cfg, FlopsProxy())
    used = set()
    for i in range(space.size):
        used.update(backbone_keys(cfg, space.backbone(i)))
    assert used == keys  # nothing missing, nothing profiled in vain


def test_measured_table_gives_same_space_as_its_model():
    cfg = small()
    table = table_from_model(cfg, FlopsProxy())
    a = Space.enumerate(cfg, table)
    b = Space.enumerate(cfg, FlopsProxy())
    assert (a.counts == b.counts).all()


def test_large_space_is_compact():
    cfg = SpaceConfig.from_dict({"stages": [{"max_depth": 8}, {"max_depth": 12}, {"max_depth": 8}],
                                 "input_size": [224, 224], "latency_ms": [1.0, 4.0]})
    space = Space.enumerate(cfg, FlopsProxy())
    assert space.size >= 10 ** 6
    assert space.counts.dtype == np.uint8 and space.counts.shape[1] == 15
    # spot check: rows are distinct architectures within the window
    assert len({bytes(r) for r in space.counts[:: space.size // 1000]}) == len(space.counts[:: space.size // 1000])
    assert space.latency.min() >= 1.0 and space.latency.max() <= 4.0


@pytest.mark.parametrize("data, message", [
    ({"stages": []}, "3 stages"),
    ({"stages": [{"max_depth": 2}] * 2 + [{"block": "wide", "max_depth": 2}]}, "neither 'basic'"),
    ({"stages": [{"max_depth": 2}, {"widths": [64, 96], "max_depth": 2}, {"max_depth": 2}]}, "width 96"),
    ({"stages": [{"max_depth": 2}, {"max_depth": 0}, {"max_depth": 2}]}, "min_depth <= max_depth"),
    ({"stages": [{"max_depth": 2}] * 3, "latency_ms": [5, 1]}, "Tmin <= Tmax"),
    ({"stages": [{"max_depth": 2}] * 3, "colour": 1}, "unknown field 'colour'"),
    ({"stages": [{"max_depth": 2}, {"block": "bottleneck", "widths": [[64, 512], [128, 256]], "max_depth": 2},
                 {"max_depth": 2}]}, "not ordered"),
    ({"stages": [{"max_depth": 2}, {"block": "bottleneck", "widths": [[256, 128]], "max_depth": 2},
                 {"max_depth": 2}]}, "out < mid"),
])
def test_bad_config_is_named(data, message):
    with pytest.raises(SpaceError, match=message):
        SpaceConfig.from_dict(data)
