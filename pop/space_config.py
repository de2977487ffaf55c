"""What the search space Ŝ is: block type, width choices and depth limits of each stage, the
input size, the class count and the latency window [Tmin, Tmax] (paper Section 3.2-3.4).

:class:`SpaceConfig` is read from YAML (``pop ... --space FILE``) or from a study's stored
``pop`` attribute; every field is checked here so that a bad file fails with one
:class:`SpaceError` line that names the field, before anything is enumerated.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from prototxt_gen.encoding import WIDTH_CHOICES, BasicBlock, Block, BottleneckBlock, STAGE_NAMES
from dfseg.base.textfile import TextFileError, read_yaml
from dfseg.base.errors import InputError

__all__ = ["SpaceConfig", "SpaceError", "StageSpec", "block_from_choice", "may_follow"]

_FIELDS = {"stages", "input_size", "num_classes", "latency_ms"}


class SpaceError(InputError, ValueError):
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
        for key in data:
            if key not in _FIELDS:
                raise SpaceError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(_FIELDS))})")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or len(raw_stages) != len(STAGE_NAMES):
            raise SpaceError(f"{where}: 'stages' must list {len(STAGE_NAMES)} stages (paper stages 3, 4, 5)")
        stages = [_parse_stage(raw, f"{where}: stage {s + 3}") for s, raw in enumerate(raw_stages)]
        size = _parse_input_size(data, where)
        lo, hi = _parse_window(data, where)
        num_classes = data.get("num_classes", 1000)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise SpaceError(f"{where}: num_classes must be a positive integer")
        return SpaceConfig(tuple(stages), size, num_classes, (lo, hi))

    @staticmethod
    def load(path: Path) -> "SpaceConfig":
        try:
            data = read_yaml(path, "YAML search space")
        except TextFileError as e:
            raise SpaceError(str(e)) from None
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


# ----------------------------------------------------------------------------- field parsers
def _parse_stage(raw, here: str) -> StageSpec:
    if not isinstance(raw, dict):
        raise SpaceError(f"{here}: expected a mapping with block, widths, max_depth")
    kind = raw.get("block", "basic")
    if kind not in ("basic", "bottleneck"):
        raise SpaceError(f"{here}: block {kind!r} is neither 'basic' nor 'bottleneck'")
    choices = _parse_choices(kind, raw.get("widths", list(WIDTH_CHOICES)), here)
    min_depth, max_depth = _parse_depths(raw, here)
    return StageSpec(kind, tuple(choices), min_depth, max_depth)


def _parse_choices(kind: str, widths, here: str) -> list[Block]:
    """The stage's width choices, ordered so that choice j may always follow choice i < j."""
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
    return choices


def _parse_depths(raw: dict, here: str) -> tuple[int, int]:
    try:
        min_depth = int(raw.get("min_depth", 1))
        max_depth = int(raw["max_depth"])
    except KeyError:
        raise SpaceError(f"{here}: missing max_depth")
    except (TypeError, ValueError):
        raise SpaceError(f"{here}: depths must be integers")
    # 255: a count vector is stored as uint8
    if not 1 <= min_depth <= max_depth <= 255:
        raise SpaceError(f"{here}: need 1 <= min_depth <= max_depth <= 255, got {min_depth}, {max_depth}")
    return min_depth, max_depth


def _parse_input_size(data: dict, where: str) -> tuple[int, int]:
    size = data.get("input_size", [224, 224])
    if isinstance(size, int):
        size = [size, size]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)):
        raise SpaceError(f"{where}: input_size must be [H, W] with H, W >= 8, got {size!r}")
    return int(size[0]), int(size[1])


def _parse_window(data: dict, where: str) -> tuple[float, float]:
    window = data.get("latency_ms", [1.0, 5.0])
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: latency_ms must be [Tmin, Tmax], got {window!r}")
    if not 0 <= lo <= hi:
        raise SpaceError(f"{where}: latency_ms needs 0 <= Tmin <= Tmax, got [{lo}, {hi}]")
    return lo, hi
