"""The search space Ŝ: every backbone of the encoding space whose estimated latency lies in
[Tmin, Tmax] (paper Section 3.2-3.4).

Compact representation.  Widths never decrease inside a stage, so a stage is fully described
by how many blocks of each width choice it holds (a *count vector*); an architecture is the
concatenation of its stages' count vectors.  Ŝ is stored as one ``uint8`` matrix (one row per
architecture) plus a ``float64`` latency vector, so 10^6 architectures take ~15 MB and every
partial-order look-up is a vectorised NumPy comparison (see :mod:`pop.order`).

The pieces live by concern: what Ŝ is in :mod:`pop.space_config`, Lat(x) in
:mod:`pop.estimate`, the pruned enumeration in :mod:`pop.enumeration`; this module holds
:class:`Space` and re-exports the names callers import from ``pop.space``.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from prototxt_gen.encoding import Backbone, Block, EncodingError, parse_backbone

from .enumeration import brute_force, enumerate_rows
from .estimate import STEM_OUT, LatencyModel, conv_out, estimate_backbone, stage_resolutions
from .order import suffix_counts
from .space_config import SpaceConfig, SpaceError, StageSpec, block_from_choice, may_follow

__all__ = ["STEM_OUT", "LatencyModel", "Space", "SpaceConfig", "SpaceError", "StageSpec", "block_from_choice",
           "block_sequence", "brute_force", "conv_out", "estimate_backbone", "may_follow", "stage_resolutions"]


def block_sequence(config: SpaceConfig, counts_row: np.ndarray) -> list[list[Block]]:
    stages = []
    off = config.offsets
    for s, spec in enumerate(config.stages):
        blocks: list[Block] = []
        for j, n in enumerate(counts_row[off[s]:off[s + 1]]):
            blocks.extend([spec.choices[j]] * int(n))
        stages.append(blocks)
    return stages


class Space:
    """Ŝ as arrays: ``counts`` (N x Σchoices, uint8), ``latency`` (N,), sorted by latency."""

    def __init__(self, config: SpaceConfig, counts: np.ndarray, latency: np.ndarray, seconds: float = 0.0):
        self.config = config
        self.counts = counts
        self.latency = latency
        self.seconds = seconds
        self._index: dict[bytes, int] | None = None

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])

    def __len__(self) -> int:
        return self.size

    def backbone(self, i: int) -> Backbone:
        return Backbone(tuple(tuple(s) for s in block_sequence(self.config, self.counts[i])))

    def encoding(self, i: int) -> str:
        return str(self.backbone(i))

    def encodings(self, indices: Sequence[int] | None = None) -> list[str]:
        idx = range(self.size) if indices is None else indices
        return [self.encoding(int(i)) for i in idx]

    def counts_of(self, backbone: Backbone) -> np.ndarray:
        row = np.zeros(self.counts.shape[1], dtype=np.uint8)
        off = self.config.offsets
        for s, (spec, stage) in enumerate(zip(self.config.stages, backbone.stages)):
            for blk in stage:
                try:
                    j = spec.choices.index(blk)
                except ValueError:
                    raise EncodingError(f"stage {s + 3}: block {blk} is not a width choice of this space")
                row[off[s] + j] += 1
        return row

    def index(self, encoding: str) -> int:
        """Row of an encoding in Ŝ; KeyError if the architecture is not in Ŝ."""
        if self._index is None:
            self._index = {bytes(r): i for i, r in enumerate(self.counts)}
        row = self.counts_of(parse_backbone(encoding))
        try:
            return self._index[bytes(row)]
        except KeyError:
            raise KeyError(f"{encoding} is not in Ŝ (outside the latency window or the space)")

    @property
    def kind(self) -> str:
        return "backbone"

    def order_keys(self) -> np.ndarray:
        """Coordinates of the partial order (pop.order): per-stage suffix counts."""
        return suffix_counts(self.counts, self.config.offsets)

    @staticmethod
    def enumerate(config: SpaceConfig, lut: LatencyModel) -> "Space":
        start = time.perf_counter()
        counts, latency = enumerate_rows(config, lut)
        order = np.argsort(latency, kind="stable")
        return Space(config, counts[order], latency[order], time.perf_counter() - start)
