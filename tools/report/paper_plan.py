"""What `make bench-paper` times: the paper's comparison tables and Fig. 1 as a list of
(table, model, size) entries, the paper's names of those models in the registry, and the rule
that keeps a net out of an engine when it would not fit this machine's memory or time.

Every model is looked up in the one registry (tools.models.registry) by its generator name;
a name the registry does not have yet (a net still to be built) is an entry like any other,
and its rows say "not built" instead of a time.

The ceiling rule (docs/tables.md): before a net is timed on an engine, its cost is worked out
from the net itself (prototxt_gen.analysis: MACs; blobs alive at once plus weights) at the size
asked.  It is not run where
- the memory it needs (an engine that reuses blob memory: the largest set of blobs alive at
  once, plus the weights) exceeds dfseg.base.memory.MEMORY_SHARE of the memory available now (Caffe checks its
  own, larger, need: every blob and each convolution's im2col buffer), or
- its passes would take longer than the ceiling at this engine's rate in this run: the GMACs
  of the nets it has timed so far over the seconds they took (a MAC-weighted rate, so the large
  nets, which the rule is for, weigh most; DEFAULT_GMACS before it has timed any; the sizes
  are timed smallest nets first).
The row then says so with the figures.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from dfseg.base.memory import available_bytes, fits
from dfseg.base.sizes import format_hxw
from prototxt_gen.analysis import NetAnalysis, analyze
from prototxt_gen.netprep import AnalysisError
from tools.models.registry import ICNET, RegistryError, model_names, timing_net

from .paper import TABLE4_SIZES, TABLE5_SIZES

__all__ = ["TABLE1_MODELS", "TABLE3_MODELS", "TABLE4_MODELS", "TABLE5_MODELS", "TABLES", "Entry", "Cost",
           "Ceiling", "plan", "registry_name", "is_built", "not_built_reason", "net_cost", "model_key"]

TABLE1_MODELS = ("shufflenet_v2", "resnet18", "shufflenet_v1", "googlenet", "mobilenet_v1",
                 "mobilenet_v2", "resnet50", "df1", "df2", "df2a")
TABLE1_HW = (224, 224)
DF_SEG = ("df1seg", "df2seg1", "df2seg2", "df1seg_d8")
#: Table 3: the 1080Ti figures are at 1024x2048 "unless marked" (paper_tables.yaml); BiSeNet's
#: are marked "FPS at 1536x768" (WxH), so they are timed at 768x1536
TABLE3_MODELS = ("segnet", "enet", ICNET, "espnet", "bisenet1", "bisenet2") + DF_SEG
TABLE3_HW = {"bisenet1": (768, 1536), "bisenet2": (768, 1536)}
FULL_HW = (1024, 2048)
TABLE4_MODELS = ("segnet", "enet", "bisenet1", "bisenet2") + DF_SEG
TABLE5_MODELS = ("espnet",) + DF_SEG
TABLES = ("table1", "table3", "table4", "table5", "fig1")

#: the paper's (and Fig. 1's) names that are not the generator name spelled loosely
PAPER_NAMES = {"icnet": ICNET, "pspnet": "pspnet101", "deeplabv2": "deeplabv2",
               "bisenet1": "bisenet1", "bisenet2": "bisenet2", "espnet": "espnet"}

#: GMAC/s assumed before an engine has timed anything in a run: about the MAC-weighted rates of
#: a full `make bench-paper` on this project's 2-core machine with 1 thread (ONNX Runtime 36,
#: OpenCV 27, caffe time 20 GMAC/s; single small nets reach 100 on ONNX Runtime).
DEFAULT_GMACS = 30.0


def model_key(name: str) -> str:
    """BiSeNet-1, BiSeNet1 and bisenet_1 are one model."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def registry_name(paper_name: str) -> str:
    """The generator name of a model the paper names (whether it is built or not)."""
    key = model_key(paper_name)
    if key in PAPER_NAMES:
        return PAPER_NAMES[key]
    return next((n for n in model_names() if model_key(n) == key), key)


def is_built(name: str) -> bool:
    return name in model_names()


def not_built_reason(name: str) -> str:
    return f"not built: no model {name!r} in the registry yet (`make {name}`)"


@dataclass(frozen=True)
class Entry:
    """One row of one table: the model (generator name), the size asked (HxW) and, for
    Tables 4 and 5, the size as the paper prints it (WxH)."""
    table: str
    name: str
    hw: tuple[int, int]
    paper_size: str | None = None


def _fig1_entries(points: list[dict]) -> list[Entry]:
    return [Entry("fig1", p["name"], tuple(p["hw"])) for p in points if p.get("name")]


def plan(tables: set[str], wanted: set[str] | None = None, fig1_points: list[dict] = ()) -> list[Entry]:
    """The entries of `tables` (of TABLES), limited to the models in `wanted` (None: all)."""
    entries = []
    if "table1" in tables:
        entries += [Entry("table1", m, TABLE1_HW) for m in TABLE1_MODELS]
    if "table3" in tables:
        entries += [Entry("table3", m, TABLE3_HW.get(m, FULL_HW)) for m in TABLE3_MODELS]
    for table, models, sizes in (("table4", TABLE4_MODELS, TABLE4_SIZES), ("table5", TABLE5_MODELS, TABLE5_SIZES)):
        if table in tables:
            entries += [Entry(table, m, hw, size) for size, hw in sizes.items() for m in models]
    if "fig1" in tables:
        entries += _fig1_entries(list(fig1_points))
    return [e for e in entries if wanted is None or e.name in wanted]


@dataclass(frozen=True)
class Cost:
    """What one forward pass of a net at one size costs, or why that is not known."""
    macs: int | None = None
    peak_bytes: int | None = None       # blobs alive at once + weights (engines that reuse memory)
    why: str | None = None


def _peak_bytes(a: NetAnalysis) -> int:
    """The largest total of blobs alive at once (a blob lives from the layer that writes it to
    the last that reads it; an in-place top is its bottom's memory, and so are the tops of the
    Split layers Caffe inserts, which share their bottom's data) plus the weights."""
    root: dict[str, str] = {}
    for layer in a.layers:
        if layer.inserted:
            for top in layer.tops:
                root[top.name] = root.get(layer.bottoms[0], layer.bottoms[0])
    last_read: dict[str, int] = {}
    for i, layer in enumerate(a.layers):
        for b in layer.bottoms:
            last_read[root.get(b, b)] = i
    live: dict[str, int] = {}
    peak = 0
    for i, layer in enumerate(a.layers):
        for top in layer.tops:
            if top.name and top.name not in live and top.name not in root:
                live[top.name] = 4 * top.count
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_read.get(n, len(a.layers)) <= i]:
            del live[name]
    return peak + 4 * a.params


def net_cost(name: str, hw: tuple[int, int]) -> Cost:
    try:
        a = analyze(timing_net(name, hw)[0])
    except (RegistryError, AnalysisError, ValueError) as err:
        return Cost(why=str(err))
    return Cost(macs=a.macs, peak_bytes=_peak_bytes(a))


@dataclass
class Ceiling:
    """The ceiling rule of one run: `seconds` per net, size and engine (all its passes)."""
    seconds: float
    timed: dict[str, list[float]] = field(default_factory=dict)   # engine -> [GMAC, seconds] timed

    def learn(self, engine: str, macs: int | None, median_ms: float | None) -> None:
        if macs and median_ms:
            total = self.timed.setdefault(engine, [0.0, 0.0])
            total[0] += macs / 1e9
            total[1] += median_ms / 1e3

    def rate(self, engine: str) -> float:
        gmac, seconds = self.timed.get(engine, (0.0, 0.0))
        return gmac / seconds if seconds else DEFAULT_GMACS

    def estimate_s(self, engine: str, cost: Cost, passes: int) -> float | None:
        return None if not cost.macs else cost.macs / 1e9 / self.rate(engine) * passes

    def refusal(self, engine: str, cost: Cost, passes: int, hw: tuple[int, int],
                memory_checked_by_engine: bool) -> str | None:
        """Why the net is not to be run on `engine` (None: run it)."""
        have = available_bytes()
        if not memory_checked_by_engine and not fits(cost.peak_bytes, have):
            return (f"not run: needs about {cost.peak_bytes / 2**30:.1f} GiB at {format_hxw(hw)} (blobs alive "
                    f"at once + weights), {have / 2**30:.1f} GiB available")
        est = self.estimate_s(engine, cost, passes)
        if est is not None and est > self.seconds:
            seen = "its rate in this run" if engine in self.timed else "the assumed rate"
            return (f"not run: {cost.macs / 1e9:.0f} GMAC a pass at {format_hxw(hw)}, about "
                    f"{est / passes:.0f} s a pass ({self.rate(engine):.0f} GMAC/s, {seen}) x {passes} "
                    f"passes = {est:.0f} s > the {self.seconds:.0f} s ceiling (--max-net-seconds)")
        return None
