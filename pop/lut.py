"""Latency look-up table (paper Section 3.2, Fig. 3a).

Every block is profiled once per configuration; a network's latency is estimated as

    Lat(x) = stem + Σ_blocks LUT[block configuration] + head.

Keys follow the paper's ``(c_i, h_i, w_i, c_o, h_o, w_o)`` (its example: ``Latency(32, 112,
112, 64, 56, 56) = 0.143 ms`` on TX2) plus what distinguishes blocks of equal shape: the block
type, a bottleneck's mid width and whether the block has a projection shortcut.  Text form::

    basic:64x56x56->128x28x28:proj      bottleneck/128:256x28x28->512x14x14:proj
    stem:3x224x224->64x56x56             head:512x7x7->1000

The file is JSON, versioned, with the platform it was measured on; building is incremental
(only missing keys are profiled) and refuses to extend or use a table from another platform.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import platform as _platform
import re
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from prototxt_gen.encoding import Backbone, BasicBlock, Block, BottleneckBlock
from tools.engines.machine import cpu_model
from dfseg.base.textfile import TextFileError, read_json
from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError

from .estimate import STEM_OUT, block_placements, conv_out, head_channels, stage_resolutions
from .space_config import SpaceConfig, may_follow

FORMAT = "dfseg-pop-lut"
VERSION = 1


class LutError(InputError, ValueError):
    pass


class MissingLatency(LutError):
    pass


@dataclasses.dataclass(frozen=True, order=True)
class LutKey:
    kind: str               # basic | bottleneck | stem | head
    c_in: int
    h_in: int
    w_in: int
    c_out: int
    h_out: int
    w_out: int
    mid: int = 0            # bottleneck mid width
    projection: bool = False

    def __str__(self) -> str:
        kind = f"bottleneck/{self.mid}" if self.kind == "bottleneck" else self.kind
        if self.kind == "head":
            return f"head:{self.c_in}x{self.h_in}x{self.w_in}->{self.c_out}"
        text = f"{kind}:{self.c_in}x{self.h_in}x{self.w_in}->{self.c_out}x{self.h_out}x{self.w_out}"
        return text + (":proj" if self.projection else "")

    @staticmethod
    def parse(text: str) -> "LutKey":
        m = re.fullmatch(r"(basic|stem|head|bottleneck/(\d+)):(\d+)x(\d+)x(\d+)->(\d+)(?:x(\d+)x(\d+))?(:proj)?", text)
        if m is None:
            raise LutError(f"LUT key {text!r} is malformed")
        kind = m.group(1).split("/")[0]
        ho = int(m.group(7)) if m.group(7) else 1
        wo = int(m.group(8)) if m.group(8) else 1
        return LutKey(kind, int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6)), ho, wo,
                      int(m.group(2) or 0), bool(m.group(9)))

    @property
    def stride(self) -> int:
        return 2 if self.h_out < self.h_in else 1

    @property
    def block(self) -> Block:
        return BottleneckBlock(self.mid, self.c_out) if self.kind == "bottleneck" else BasicBlock(self.c_out)


def block_key(block: Block, in_channels: int, in_hw: tuple[int, int], stride: int, projection: bool) -> LutKey:
    h, w = in_hw
    ho, wo = (conv_out(h), conv_out(w)) if stride == 2 else (h, w)
    if isinstance(block, BottleneckBlock):
        return LutKey("bottleneck", in_channels, h, w, block.out, ho, wo, block.mid, projection)
    return LutKey("basic", in_channels, h, w, block.out, ho, wo, 0, projection)


def stem_key(input_size: tuple[int, int]) -> LutKey:
    h, w = input_size
    return LutKey("stem", 3, h, w, STEM_OUT, conv_out(conv_out(h)), conv_out(conv_out(w)))


def head_key(in_channels: int, in_hw: tuple[int, int], num_classes: int) -> LutKey:
    return LutKey("head", in_channels, in_hw[0], in_hw[1], num_classes, 1, 1)


def required_keys(config: SpaceConfig) -> list[LutKey]:
    """Every block configuration any architecture of the space can contain."""
    sizes = stage_resolutions(config.input_size)
    keys = {stem_key(config.input_size)}
    incoming: list[Block | None] = [None]
    for s, spec in enumerate(config.stages):
        for prev in incoming:
            channels = STEM_OUT if prev is None else prev.out
            for blk in spec.choices:
                if may_follow(prev, blk):
                    keys.add(block_key(blk, channels, sizes[s], 2, True))
        for i, a in enumerate(spec.choices):
            for b in spec.choices[i:]:
                keys.add(block_key(b, a.out, sizes[s + 1], 1, a != b))
        incoming = list(spec.choices)
    for blk in config.stages[-1].choices:
        keys.add(head_key(blk.out, sizes[-1], config.num_classes))
    return sorted(keys)


def backbone_keys(config: SpaceConfig, backbone: Backbone) -> list[LutKey]:
    keys = [stem_key(config.input_size)]
    keys.extend(block_key(*placement) for placement in block_placements(config, backbone))
    keys.append(head_key(head_channels(backbone), stage_resolutions(config.input_size)[-1], config.num_classes))
    return keys


def this_platform(backend_name: str, engine_version: str, threads: int) -> dict:
    return {"cpu": cpu_model(), "machine": _platform.machine(), "system": _platform.system(),
            "backend": backend_name, "engine_version": engine_version, "threads": threads}


def same_platform(a: dict, b: dict) -> list[str]:
    """Fields that differ (empty when both describe the same measuring platform)."""
    return [f for f in ("cpu", "machine", "backend", "engine_version", "threads", "timing") if a.get(f) != b.get(f)]


class LatencyTable:
    """Measured block latencies (ms) with the platform they were measured on."""

    def __init__(self, platform: dict, entries: dict[LutKey, float] | None = None, meta: dict | None = None):
        self.platform = platform
        self.entries: dict[LutKey, float] = dict(entries or {})
        self.meta = dict(meta or {})

    # LatencyModel protocol (pop.estimate)
    def _get(self, key: LutKey) -> float:
        try:
            return self.entries[key]
        except KeyError:
            raise MissingLatency(f"LUT has no entry {key} (run `pop lut build` for this space)")

    # Every entry is a whole (tiny) net's time and so contains a fixed cost that a part inside
    # a network does not pay: the engine's call (measured at build time on a one-value net) and
    # more -- a part timed alone reads its input and writes its output cold, where inside a net
    # the previous layer left them in cache.  The stem keeps its cost, blocks and head give one
    # back each (never below a microsecond: latencies must stay positive).
    @property
    def call_overhead(self) -> float:
        return float(self.meta.get("call_overhead_ms", 0.0))

    # The model of latency (docs/measurement.md, "LUT"): Lat = scale x (Σ parts - (parts - 1) x
    # part_overhead).  Calibration fits both numbers on whole nets timed in the same rounds as
    # each other; until then part_overhead is the measured call overhead and scale is 1.
    @property
    def part_overhead(self) -> float:
        return float(self.meta.get("calibration", {}).get("part_overhead_ms", self.call_overhead))

    @property
    def scale(self) -> float:
        return float(self.meta.get("calibration", {}).get("scale", 1.0))

    def stem(self, input_size):
        return self.scale * self._get(stem_key(tuple(input_size)))

    def block(self, block, in_channels, in_hw, stride, projection):
        raw = self._get(block_key(block, in_channels, tuple(in_hw), stride, projection))
        return self.scale * max(raw - self.part_overhead, 1e-6)

    def head(self, in_channels, in_hw, num_classes):
        raw = self._get(head_key(in_channels, tuple(in_hw), num_classes))
        return self.scale * max(raw - self.part_overhead, 1e-6)

    def missing(self, keys: Iterable[LutKey]) -> list[LutKey]:
        return [k for k in keys if k not in self.entries]

    # file format
    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "platform": self.platform, "meta": self.meta,
                "entries": {str(k): v for k, v in sorted(self.entries.items())}}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")  # never half a file

    @staticmethod
    def from_json(data: dict, where: str = "LUT") -> "LatencyTable":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LutError(f"{where}: not a POP latency table (format {FORMAT!r} expected)")
        if data.get("version") != VERSION:
            raise LutError(f"{where}: LUT version {data.get('version')} not supported (this is version {VERSION})")
        entries = {}
        for k, v in data.get("entries", {}).items():
            try:
                entries[LutKey.parse(k)] = float(v)
            except (TypeError, ValueError) as e:
                raise LutError(f"{where}: entry {k!r}: {e}")
        return LatencyTable(data.get("platform", {}), entries, data.get("meta"))

    @staticmethod
    def load(path: Path) -> "LatencyTable":
        try:
            data = read_json(path, "JSON latency table")
        except TextFileError as e:
            raise LutError(str(e)) from None
        return LatencyTable.from_json(data, str(path))

    def check_platform(self, current: dict, where: str) -> None:
        diff = same_platform(self.platform, current)
        if diff:
            detail = ", ".join(f"{f}: {self.platform.get(f)!r} here {current.get(f)!r}" for f in diff)
            raise LutError(f"{where}: LUT was measured on another platform ({detail})")


BUILD_CHUNK = 16   # keys timed together in interleaved rounds, then saved


def build(table: LatencyTable, keys: list[LutKey], backend, save_to: Path | None = None,
          progress: bool = True) -> int:
    """Profile every missing key with `backend`, BUILD_CHUNK keys at a time in interleaved
    rounds (``backend.profile_keys``); saves after each chunk, so an interrupted build keeps
    what it measured.  A build that adds entries drops an earlier calibration (it was measured
    against other entries).  Returns the number of new entries."""
    todo = table.missing(keys)
    if todo or "call_overhead_ms" not in table.meta:
        table.meta["call_overhead_ms"] = float(backend.call_overhead())
    if todo:
        table.meta.pop("calibration", None)
    with tqdm(total=len(todo), desc="profiling blocks", unit="block", disable=not progress) as bar:
        for start in range(0, len(todo), BUILD_CHUNK):
            chunk = todo[start:start + BUILD_CHUNK]
            table.entries.update(backend.profile_keys(chunk))
            bar.update(len(chunk))
            if save_to is not None:
                table.save(save_to)
    table.meta["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if save_to is not None:
        table.save(save_to)
    return len(todo)


class FlopsProxy:
    """A *proxy*, not a measurement: latency proportional to multiply-adds (1 ms per GMAC).
    Used by tests and the algorithm benchmarks where only monotonicity matters; the search
    itself runs on measured tables."""

    def __init__(self, ms_per_gmac: float = 1.0):
        self.k = ms_per_gmac * 1e-9

    def stem(self, input_size):
        h, w = input_size
        h1, w1 = conv_out(h), conv_out(w)
        h2, w2 = conv_out(h1), conv_out(w1)
        return self.k * (h1 * w1 * 32 * 27 + h2 * w2 * 64 * 32 * 9)

    def block(self, block, in_channels, in_hw, stride, projection):
        h, w = in_hw
        ho, wo = (conv_out(h), conv_out(w)) if stride == 2 else (h, w)
        if isinstance(block, BottleneckBlock):
            macs = ho * wo * (in_channels * block.mid + block.mid * block.mid * 9 + block.mid * block.out)
        else:
            macs = ho * wo * (in_channels * block.out * 9 + block.out * block.out * 9)
        if projection:
            macs += ho * wo * in_channels * block.out
        return self.k * macs

    def head(self, in_channels, in_hw, num_classes):
        return self.k * (in_hw[0] * in_hw[1] * in_channels + in_channels * num_classes)


def table_from_model(config: SpaceConfig, model, platform: dict | None = None) -> LatencyTable:
    """A LatencyTable holding `model`'s value for every key of the space (e.g. the FLOPs
    proxy for algorithm tests); its platform says where the numbers came from."""
    table = LatencyTable(platform or {"backend": type(model).__name__, "cpu": "none (proxy)", "machine": "-",
                                      "engine_version": "-", "threads": 0})
    for k in required_keys(config):
        if k.kind == "stem":
            v = model.stem((k.h_in, k.w_in))
        elif k.kind == "head":
            v = model.head(k.c_in, (k.h_in, k.w_in), k.c_out)
        else:
            v = model.block(k.block, k.c_in, (k.h_in, k.w_in), k.stride, k.projection)
        table.entries[k] = float(v)
    return table
