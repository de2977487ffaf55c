"""The search space Ŝ: every backbone of the encoding space whose estimated latency lies in
[Tmin, Tmax] (paper Section 3.2-3.4).

Compact representation.  Widths never decrease inside a stage, so a stage is fully described
by how many blocks of each width choice it holds (a *count vector*); an architecture is the
concatenation of its stages' count vectors.  Ŝ is stored as one ``uint8`` matrix (one row per
architecture) plus a ``float64`` latency vector, so 10^6 architectures take ~15 MB and every
partial-order look-up is a vectorised NumPy comparison (see :mod:`pop.order`).

Enumeration never walks all sequences: it builds each stage's sequences depth-first, cutting
a subtree as soon as the latency already spent plus a lower bound of the cheapest possible
completion exceeds Tmax (adding blocks only adds latency; the cheapest completion of wider
choices is bounded by a suffix minimum, which is how width monotonicity is used without
trusting every LUT entry to be monotone), and then joins the stages with sorted latency
ranges (``searchsorted``) instead of nested loops.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from prototxt_gen.encoding import (
    WIDTH_CHOICES,
    Backbone,
    BasicBlock,
    Block,
    BottleneckBlock,
    EncodingError,
    STAGE_NAMES,
    parse_backbone,
)
from tools.common.textfile import TextFileError, read_text

STEM_OUT = 64  # conv2 of the fixed stem


class SpaceError(ValueError):
    """Bad search-space configuration; the message says which field."""


def block_from_choice(kind: str, choice) -> Block:
    if kind == "basic":
        return BasicBlock(int(choice))
    mid, out = choice
    return BottleneckBlock(int(mid), int(out))


def may_follow(previous: Block | None, block: Block) -> bool:
    """The encoding's rule: widths never decrease along the network."""
    if previous is None:
        return True
    if block.out < previous.out:
        return False
    if isinstance(block, BottleneckBlock) and isinstance(previous, BottleneckBlock):
        return block.mid >= previous.mid
    return True


@dataclasses.dataclass(frozen=True)
class StageSpec:
    block: str                      # "basic" or "bottleneck"
    choices: tuple[Block, ...]      # ordered: choice j may always follow choice i < j
    min_depth: int
    max_depth: int


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """What Ŝ is: block types, width choices and depth limits per stage, input size, window."""

    stages: tuple[StageSpec, ...]
    input_size: tuple[int, int] = (224, 224)
    num_classes: int = 1000
    latency_ms: tuple[float, float] = (1.0, 5.0)

    @staticmethod
    def from_dict(data: dict, where: str = "space config") -> "SpaceConfig":
        if not isinstance(data, dict):
            raise SpaceError(f"{where}: expected a mapping")
        known = {"stages", "input_size", "num_classes", "latency_ms"}
        for key in data:
            if key not in known:
                raise SpaceError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(known))})")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or len(raw_stages) != len(STAGE_NAMES):
            raise SpaceError(f"{where}: 'stages' must list {len(STAGE_NAMES)} stages (paper stages 3, 4, 5)")
        stages = []
        for s, raw in enumerate(raw_stages):
            here = f"{where}: stage {s + 3}"
            if not isinstance(raw, dict):
                raise SpaceError(f"{here}: expected a mapping with block, widths, max_depth")
            kind = raw.get("block", "basic")
            if kind not in ("basic", "bottleneck"):
                raise SpaceError(f"{here}: block {kind!r} is neither 'basic' nor 'bottleneck'")
            widths = raw.get("widths", list(WIDTH_CHOICES))
            try:
                choices = [block_from_choice(kind, w) for w in widths]
            except (TypeError, ValueError):
                raise SpaceError(f"{here}: widths {widths!r} must be widths (basic) or [mid, out] pairs (bottleneck)")
            for blk in choices:
                for w in blk.widths:
                    if w not in WIDTH_CHOICES:
                        raise SpaceError(f"{here}: width {w} not in {list(WIDTH_CHOICES)}")
                if isinstance(blk, BottleneckBlock) and blk.out < blk.mid:
                    raise SpaceError(f"{here}: bottleneck {blk} has out < mid")
            choices = sorted(set(choices), key=lambda b: (b.out, b.widths))
            for a, b in zip(choices, choices[1:]):
                if not may_follow(a, b):
                    raise SpaceError(f"{here}: width choices {a} and {b} are not ordered (both widths must grow)")
            if not choices:
                raise SpaceError(f"{here}: no width choices")
            try:
                min_depth = int(raw.get("min_depth", 1))
                max_depth = int(raw["max_depth"])
            except KeyError:
                raise SpaceError(f"{here}: missing max_depth")
            except (TypeError, ValueError):
                raise SpaceError(f"{here}: depths must be integers")
            if not 1 <= min_depth <= max_depth <= 255:
                raise SpaceError(f"{here}: need 1 <= min_depth <= max_depth <= 255, got {min_depth}, {max_depth}")
            stages.append(StageSpec(kind, tuple(choices), min_depth, max_depth))
        size = data.get("input_size", [224, 224])
        if isinstance(size, int):
            size = [size, size]
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)):
            raise SpaceError(f"{where}: input_size must be [H, W] with H, W >= 8, got {size!r}")
        window = data.get("latency_ms", [1.0, 5.0])
        try:
            lo, hi = (float(v) for v in window)
        except (TypeError, ValueError):
            raise SpaceError(f"{where}: latency_ms must be [Tmin, Tmax], got {window!r}")
        if not 0 <= lo <= hi:
            raise SpaceError(f"{where}: latency_ms needs 0 <= Tmin <= Tmax, got [{lo}, {hi}]")
        num_classes = data.get("num_classes", 1000)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise SpaceError(f"{where}: num_classes must be a positive integer")
        return SpaceConfig(tuple(stages), (int(size[0]), int(size[1])), num_classes, (lo, hi))

    @staticmethod
    def load(path: Path) -> "SpaceConfig":
        try:
            data = yaml.safe_load(read_text(path, "YAML search space"))
        except TextFileError as e:
            raise SpaceError(str(e)) from None
        except yaml.YAMLError as e:
            raise SpaceError(f"{path}: not YAML ({str(e).splitlines()[0]})")
        return SpaceConfig.from_dict(data, where=str(path))

    def to_dict(self) -> dict:
        return {
            "stages": [{"block": s.block,
                        "widths": [b.out if s.block == "basic" else [b.mid, b.out] for b in s.choices],
                        "min_depth": s.min_depth, "max_depth": s.max_depth} for s in self.stages],
            "input_size": list(self.input_size),
            "num_classes": self.num_classes,
            "latency_ms": list(self.latency_ms),
        }

    def with_window(self, lo: float, hi: float) -> "SpaceConfig":
        return dataclasses.replace(self, latency_ms=(float(lo), float(hi)))

    @property
    def offsets(self) -> tuple[int, ...]:
        """Column where each stage's count vector starts in the row representation."""
        out = [0]
        for s in self.stages:
            out.append(out[-1] + len(s.choices))
        return tuple(out)


def conv_out(h: int) -> int:
    """3x3/pad 1/stride 2 (and 1x1/stride 2): ceil(h / 2)."""
    return (h + 1) // 2


def stage_resolutions(input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Spatial size entering each stage (after the stem's two stride-2 convs) and after it."""
    h, w = conv_out(conv_out(input_size[0])), conv_out(conv_out(input_size[1]))
    sizes = [(h, w)]
    for _ in STAGE_NAMES:
        h, w = conv_out(h), conv_out(w)
        sizes.append((h, w))
    return sizes


# ----------------------------------------------------------------------------- latency model
# A latency model answers three questions (milliseconds).  pop.lut.LatencyTable implements it
# from measurements; tests may pass any object with these methods.
class LatencyModel:
    def stem(self, input_size: tuple[int, int]) -> float: ...
    def block(self, block: Block, in_channels: int, in_hw: tuple[int, int], stride: int, projection: bool) -> float: ...
    def head(self, in_channels: int, in_hw: tuple[int, int], num_classes: int) -> float: ...


def block_sequence(config: SpaceConfig, counts_row: np.ndarray) -> list[list[Block]]:
    stages = []
    off = config.offsets
    for s, spec in enumerate(config.stages):
        blocks: list[Block] = []
        for j, n in enumerate(counts_row[off[s]:off[s + 1]]):
            blocks.extend([spec.choices[j]] * int(n))
        stages.append(blocks)
    return stages


def estimate_backbone(config: SpaceConfig, lut: LatencyModel, backbone: Backbone) -> float:
    """Lat(x) = stem + Σ blocks + head (paper Section 3.2)."""
    sizes = stage_resolutions(config.input_size)
    total = lut.stem(config.input_size)
    channels = STEM_OUT
    for s, stage in enumerate(backbone.stages):
        previous = None
        for i, blk in enumerate(stage):
            first = i == 0
            total += lut.block(blk, channels, sizes[s] if first else sizes[s + 1], 2 if first else 1,
                               first or blk != previous)
            channels, previous = blk.out, blk
    return total + lut.head(channels, sizes[-1], config.num_classes)


# ----------------------------------------------------------------------------- enumeration
@dataclasses.dataclass
class _StageTable:
    """All sequences of one stage for one incoming block: count rows, latency, last choice."""

    counts: np.ndarray      # (n, choices) uint8
    latency: np.ndarray     # (n,) float64, sorted ascending
    last: np.ndarray        # (n,) int, index of the last (widest) choice


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
        from .order import suffix_counts
        return suffix_counts(self.counts, self.config.offsets)

    @staticmethod
    def enumerate(config: SpaceConfig, lut: LatencyModel) -> "Space":
        start = time.perf_counter()
        counts, latency = _enumerate(config, lut)
        order = np.argsort(latency, kind="stable")
        return Space(config, counts[order], latency[order], time.perf_counter() - start)


def _enumerate(config: SpaceConfig, lut: LatencyModel) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = config.latency_ms
    sizes = stage_resolutions(config.input_size)
    stages = config.stages
    n_stages = len(stages)
    stem = lut.stem(config.input_size)
    head = {}  # last block -> head latency

    def head_of(blk: Block | None) -> float:
        key = blk.out
        if key not in head:
            head[key] = lut.head(key, sizes[-1], config.num_classes)
        return head[key]

    @functools.lru_cache(maxsize=None)
    def step(s: int, previous: Block | None, j: int, first: bool) -> float:
        """Latency of choice j of stage s after block `previous` (None = the stem)."""
        blk = stages[s].choices[j]
        channels = STEM_OUT if previous is None else previous.out
        return lut.block(blk, channels, sizes[s] if first else sizes[s + 1], 2 if first else 1,
                         first or blk != previous)

    def allowed(s: int, previous: Block | None, min_j: int) -> list[int]:
        return [j for j in range(min_j, len(stages[s].choices)) if may_follow(previous, stages[s].choices[j])]

    @functools.lru_cache(maxsize=None)
    def finish(s: int, need: int, previous: Block | None, j_prev: int, first: bool) -> float:
        """Exact minimum of the latency still to come: at least `need` more blocks in stage s
        (choices >= j_prev), every later stage at its minimum depth, then the head.  Extra
        blocks only add latency, so the minimum never adds more than it must."""
        if s == n_stages:
            return head_of(previous)
        if need <= 0 and not first:
            return finish(s + 1, stages[s + 1].min_depth if s + 1 < n_stages else 0, previous, 0, True)
        best = float("inf")
        for j in allowed(s, previous, j_prev):
            best = min(best, step(s, previous, j, first) + finish(s, need - 1, stages[s].choices[j], j, False))
        return best

    # Per stage and incoming block: all sequences whose own cost fits the budget that remains
    # even after the cheapest possible remainder of the network.
    @functools.lru_cache(maxsize=None)
    def stage_table(s: int, previous: Block | None, budget: float) -> _StageTable:
        spec = stages[s]
        rows: list[list[int]] = []
        lats: list[float] = []
        lasts: list[int] = []
        counts = [0] * len(spec.choices)

        def rest_bound(blk: Block) -> float:
            return finish(s + 1, stages[s + 1].min_depth, blk, 0, True) if s + 1 < n_stages else head_of(blk)

        def walk(prev_blk: Block | None, j_min: int, depth: int, spent: float) -> None:
            first = depth == 0
            if depth >= spec.min_depth:
                if spent + rest_bound(prev_blk) <= budget:
                    rows.append(counts.copy())
                    lats.append(spent)
                    lasts.append(j_min)
            if depth == spec.max_depth:
                return
            for j in allowed(s, prev_blk, j_min):
                # width monotonicity: if even the cheapest completion from choice >= j is over
                # budget, every wider choice is too: stop this loop (cuts all their subtrees)
                if spent + suffix_min_step_stage(s, prev_blk, j, first, depth) > budget:
                    break
                cost = step(s, prev_blk, j, first)
                counts[j] += 1
                walk(spec.choices[j], j, depth + 1, spent + cost)
                counts[j] -= 1

        walk(previous, 0, 0, 0.0)
        if not rows:
            return _StageTable(np.zeros((0, len(spec.choices)), np.uint8), np.zeros(0), np.zeros(0, int))
        arr = np.asarray(rows, dtype=np.uint8)
        lat = np.asarray(lats)
        order = np.argsort(lat, kind="stable")
        return _StageTable(arr[order], lat[order], np.asarray(lasts)[order])

    @functools.lru_cache(maxsize=None)
    def suffix_min_step_stage(s: int, previous: Block | None, j: int, first: bool, depth: int) -> float:
        spec = stages[s]
        need_after = max(spec.min_depth - depth - 1, 0)
        best = float("inf")
        for k in allowed(s, previous, j):
            best = min(best, step(s, previous, k, first) + finish(s, need_after, spec.choices[k], k, False))
        return best

    budget_total = hi - stem
    if budget_total < 0:
        return np.zeros((0, config.offsets[-1]), np.uint8), np.zeros(0)

    # Join stage by stage: prefixes are (count rows, latency so far, last block).
    prefix_rows = [np.zeros((1, 0), np.uint8)]
    prefix_lat = [np.zeros(1)]
    prefix_last: list[Block | None] = [None]
    for s in range(n_stages):
        new_rows, new_lat, new_last = [], [], []
        for rows, lat, last in zip(prefix_rows, prefix_lat, prefix_last):
            # all prefixes sharing `last` join with the same stage table
            table = stage_table(s, last, budget_total - float(lat.min()))
            if table.counts.shape[0] == 0:
                continue
            for j_last in np.unique(table.last):
                sel = table.last == j_last
                t_counts, t_lat = table.counts[sel], table.latency[sel]
                blk = stages[s].choices[int(j_last)]
                rest = finish(s + 1, stages[s + 1].min_depth, blk, 0, True) if s + 1 < n_stages else head_of(blk)
                # each prefix p may take stage sequences with lat_p + t + rest <= budget
                limit = np.searchsorted(t_lat, budget_total - rest - lat + 1e-9, side="right")  # exact filter below
                if s + 1 == n_stages:  # last stage: also skip everything faster than Tmin
                    first = np.searchsorted(t_lat, lo - stem - rest - lat - 1e-9, side="left")
                else:
                    first = np.zeros_like(limit)
                count = np.maximum(limit - first, 0)
                keep = count > 0
                if not keep.any():
                    continue
                p_idx = np.repeat(np.nonzero(keep)[0], count[keep])
                offsets_in_run = np.arange(p_idx.size) - np.repeat(np.cumsum(count[keep]) - count[keep], count[keep])
                t_idx = first[p_idx] + offsets_in_run
                new_rows.append(np.hstack([rows[p_idx], t_counts[t_idx]]))
                new_lat.append(lat[p_idx] + t_lat[t_idx])
                new_last.append(blk)
        # group by last block so the next stage reuses one table per group
        prefix_rows, prefix_lat, prefix_last = _group(new_rows, new_lat, new_last)
    if not prefix_rows:
        return np.zeros((0, config.offsets[-1]), np.uint8), np.zeros(0)
    rows_all, lat_all = [], []
    for rows, lat, last in zip(prefix_rows, prefix_lat, prefix_last):
        total = stem + lat + head_of(last)
        ok = (total >= lo) & (total <= hi)
        rows_all.append(rows[ok])
        lat_all.append(total[ok])
    return np.vstack(rows_all), np.concatenate(lat_all)


def _group(rows: list, lats: list, lasts: list):
    by: dict = {}
    for r, l, b in zip(rows, lats, lasts):
        by.setdefault(b, ([], []))
        by[b][0].append(r)
        by[b][1].append(l)
    out_rows, out_lat, out_last = [], [], []
    for b, (rs, ls) in by.items():
        out_rows.append(np.vstack(rs))
        out_lat.append(np.concatenate(ls))
        out_last.append(b)
    return out_rows, out_lat, out_last


def brute_force(config: SpaceConfig, lut: LatencyModel) -> list[str]:
    """Every valid backbone in the window, by walking all sequences (tests only: tiny spaces)."""
    import itertools

    lo, hi = config.latency_ms
    per_stage = []
    for spec in config.stages:
        seqs = []
        for d in range(spec.min_depth, spec.max_depth + 1):
            seqs.extend(itertools.combinations_with_replacement(spec.choices, d))
        per_stage.append(seqs)
    out = []
    for combo in itertools.product(*per_stage):
        try:
            bb = Backbone(tuple(tuple(s) for s in combo))
        except EncodingError:
            continue
        lat = estimate_backbone(config, lut, bb)
        if lo <= lat <= hi:
            out.append(str(bb))
    return out
