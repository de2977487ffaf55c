"""The partial order: Fig. 4 examples, order axioms, agreement with the base relations and
with the vectorised suffix-count form."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prototxt_gen.encoding import Backbone, BasicBlock, parse_backbone
from pop.decoder import DecoderSpace
from pop.lut import FlopsProxy
from pop.order import precedes, predecessors_mask, suffix_counts
from pop.space import Space, SpaceConfig

P = parse_backbone
REST = ",(128),(256)]"


@pytest.mark.parametrize("x, y, expected", [
    ("[(64,64)" + REST, "[(64,64,64)" + REST, True),        # shallower, same widths
    ("[(64,64,64)" + REST, "[(64,64,128)" + REST, True),    # narrower, same depth
    ("[(64,64)" + REST, "[(64,128,128)" + REST, True),      # closure of both
    ("[(64,128)" + REST, "[(64,64,64)" + REST, False),      # incomparable
    ("[(64,64,64)" + REST, "[(64,128)" + REST, False),
    ("[(64,64)" + REST, "[(64,64)" + REST, False),          # irreflexive
    ("[(128)" + REST, "[(64,64)" + REST, False),            # a wide block is not two narrow ones
    ("[(64),(128),(256)]", "[(64),(128,128),(256,512)]", True),
])
def test_fig4_examples(x, y, expected):
    assert precedes(P(x), P(y)) is expected


WIDTHS = (64, 128, 256)


@st.composite
def backbones(draw):
    stages = []
    floor = 64
    for s in range(3):
        n = draw(st.integers(1, 3))
        ws = sorted(draw(st.lists(st.sampled_from([w for w in WIDTHS if w >= floor]), min_size=n, max_size=n)))
        floor = ws[-1]
        stages.append(tuple(BasicBlock(w) for w in ws))
    return Backbone(tuple(stages))


@settings(max_examples=300, deadline=None)
@given(backbones(), backbones(), backbones())
def test_order_axioms(x, y, z):
    assert not precedes(x, x)
    assert not (precedes(x, y) and precedes(y, x))
    if precedes(x, y) and precedes(y, z):
        assert precedes(x, z)


def _base_successors(b: Backbone) -> set[Backbone]:
    """Add one block (same widths elsewhere) or widen one block (same depth): the paper's two
    base relations, kept inside the encoding space."""
    out = set()
    for s, stage in enumerate(b.stages):
        variants = []
        for pos in range(len(stage) + 1):
            for w in WIDTHS:
                variants.append(stage[:pos] + (BasicBlock(w),) + stage[pos:])
        for pos, blk in enumerate(stage):
            for w in WIDTHS:
                if w > blk.width:
                    variants.append(stage[:pos] + (BasicBlock(w),) + stage[pos + 1:])
        for v in variants:
            try:
                out.add(Backbone(b.stages[:s] + (v,) + b.stages[s + 1:]))
            except Exception:
                pass  # not a valid (non-decreasing) encoding
    return out


def test_order_is_the_closure_of_the_base_relations():
    cfg = SpaceConfig.from_dict({"stages": [{"widths": list(WIDTHS), "max_depth": 2}] * 3,
                                 "input_size": [64, 64], "latency_ms": [0, 1e9]})
    space = Space.enumerate(cfg, FlopsProxy())
    nets = [space.backbone(i) for i in range(space.size)]
    members = set(nets)
    succ = {b: {c for c in _base_successors(b) if c in members} for b in nets}
    # every base step is ≺
    for b in nets:
        for c in succ[b]:
            assert precedes(b, c)
    # transitive closure by BFS equals ≺
    for b in nets[:: max(len(nets) // 40, 1)]:
        reach, todo = set(), [b]
        while todo:
            for c in succ[todo.pop()]:
                if c not in reach:
                    reach.add(c)
                    todo.append(c)
        assert reach == {c for c in nets if precedes(b, c)}


def test_vectorised_order_equals_reference():
    cfg = SpaceConfig.from_dict({"stages": [{"widths": list(WIDTHS), "max_depth": 3}] * 3,
                                 "input_size": [64, 64], "latency_ms": [0, 1e9]})
    space = Space.enumerate(cfg, FlopsProxy())
    keys = suffix_counts(space.counts, cfg.offsets)
    nets = [space.backbone(i) for i in range(space.size)]
    rng = np.random.default_rng(0)
    for w in rng.choice(space.size, 25, replace=False):
        mask = predecessors_mask(keys, int(w))
        assert [bool(v) for v in mask] == [precedes(m, nets[w]) for m in nets]


def test_decoder_settings_are_ordered_elementwise():
    choices = ["K", 32, 64, 128]
    settings = list(itertools.product(choices, repeat=3))
    data = {"decoder": {"backbone": "[(64),(128),(256)]", "num_classes": 19, "wc_choices": choices,
                        "latency_ms": {",".join(map(str, s)): float(i) for i, s in enumerate(settings)}}}
    space = DecoderSpace.from_dict(data)
    keys = space.order_keys()
    rank = {c: i for i, c in enumerate(choices)}
    for w in range(0, space.size, 7):
        mask = predecessors_mask(keys, w)
        expected = [m != space.settings[w] and all(rank[a] <= rank[b] for a, b in zip(m, space.settings[w]))
                    for m in space.settings]
        assert list(mask) == expected


@pytest.mark.parametrize("content, problem", [(b"", "(empty)"), (b"[1, 2]\n", "a YAML mapping expected"),
                                              (b"decoder: 5\n", "no 'decoder' mapping"),
                                              (b"other: {}\n", "no 'decoder' mapping"),
                                              (b"\xff\xfe", "not UTF-8")])
def test_decoder_measure_names_a_broken_earlier_file_before_profiling(tmp_path, content, problem):
    from pop.decoder import measure
    from pop.space_config import SpaceError

    class NoProfiling:
        def platform(self):
            return {"cpu": "test"}

        def __getattr__(self, name):
            pytest.fail(f"profiled ({name}) before the earlier file was checked")

    out = tmp_path / "decoder.yaml"
    out.write_bytes(content)
    with pytest.raises(SpaceError) as info:
        measure("[(64),(128),(256)]", 19, [32, 64], (64, 128), NoProfiling(), out, progress=False)
    assert str(info.value).startswith(str(out)) and problem in str(info.value)
    assert out.read_bytes() == content            # what was there is kept
