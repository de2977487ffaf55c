"""Nets against nets on one engine, in interleaved rounds (docs/measurement.md): the measuring
of the head-to-head bench (``make bench``, ``make df1seg``) and of the paper's comparison tables
(``make bench-paper``).

:func:`measure_group` times the nets of one size group on one engine (checking a second
engine's outputs against pycaffe's first) and gives a :class:`Run` per net, its time a timing
record (tools.report.timings); :func:`head_to_head` is the DF1-Seg/ICNet FPS ratio from the same
rounds; :func:`bench` runs every size group on every engine and :func:`summary` is the
``results.json`` it writes; :func:`table_rows` are the rows of ``bench/paper.json``.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from dfseg.base.sizes import format_hxw
from prototxt_gen.netio import NetDefinitionError, write_net
from tools.models.registry import ICNET, RegistryError, display_name, run_size, timing_net
from tools.report.paper import TABLE4_SIZES
from tools.report.timings import TIMING_KEYS, models_view, timing_record

from . import make_engine
from .base import EngineError
from .machine import describe_machine
from .nets import prepare_net, scaled_difference
from .protocol import Protocol, compare, ratio_interval

__all__ = ["FULL_HW", "ICNET_HW", "OUTPUT_TOLERANCE", "REPORTED", "Run", "SECOND_ENGINES", "Settings",
           "TABLE4_MODELS",
           "bench", "head_to_head", "measure_group", "plan", "summary", "table_rows"]

FULL_HW = (1024, 2048)
ICNET_HW = (1025, 2049)
TABLE4_MODELS = {"DF1-Seg", "DF2-Seg1", "DF2-Seg2", "DF1-Seg-d8"}
#: engine of the engine layer -> its name in results.json (`df1seg_over_icnet.caffe` is `caffe time`)
REPORTED = {"caffe-time": "caffe", "opencv": "opencv", "onnxruntime": "onnxruntime", "pycaffe": "pycaffe",
            "torch": "torch"}
#: the second engines of `make bench`: full size only (Table 4 is a `caffe time` table), each
#: output checked against pycaffe's
SECOND_ENGINES = ("opencv", "torch")
OUTPUT_TOLERANCE = 1e-3   # a second engine's output vs pycaffe's, relative to the largest value
STATISTIC = ("time: median of passes (caffe: of its per-run averages); "
             "ratio: median of per-round ratios, bootstrap 95 % CI over rounds")


@dataclass
class Run:
    """One net on one engine at one size; the timing record's keys once it was timed."""
    model: str
    paper_name: str
    engine: str
    input_hw: tuple[int, int]          # the size timed
    iterations: int
    paper_hw: tuple[int, int] | None = None   # the size the paper's figure is for
    median_ms: float | None = None
    min_ms: float | None = None
    ci95_ms: list[float] | None = None
    samples: int | None = None
    protocol: dict | None = None
    machine: dict | None = None
    fps: float | None = None
    busy: bool | None = None
    paper_ms: float | None = None
    paper_fps: float | None = None
    error: str | None = None
    layers: list = field(default_factory=list)


def plan(models: list[str], table4: bool, iterations: int, t4_iterations: int) -> list[list[tuple]]:
    """Size groups of (model, paper name, paper size, iterations): the nets of one group are
    compared in interleaved rounds (full size first: the DF1-Seg/ICNet head-to-head)."""
    groups = [[(m, display_name(m), ICNET_HW if m == ICNET else FULL_HW, iterations) for m in models]]
    if table4:
        for hw in TABLE4_SIZES.values():
            group = [(m, display_name(m), hw, t4_iterations) for m in models
                     if display_name(m) in TABLE4_MODELS]
            if group:
                groups.append(group)
    return groups


def _check_against_caffe(prepared, reference: dict) -> str | None:
    try:
        diff = scaled_difference(prepared.outputs(), reference)
    except EngineError as err:
        return f"{err} (Caffe's)"
    if diff > OUTPUT_TOLERANCE:
        return f"output differs from Caffe's (max diff {diff:.3g} of its largest value)"
    return None


def _reference_outputs(engine, net, key, cache: dict | None) -> dict:
    """pycaffe's outputs of `net`, computed once per `key` (model, size) when given a `cache`:
    every checked engine is compared with the same reference, at the cost of one pass."""
    if cache is not None and key in cache:
        return cache[key]
    with engine.prepare(net) as ref:
        outputs = ref.outputs()
    if cache is not None:
        cache[key] = outputs
    return outputs


def _prepare(engine_name, reference_engine, group, protocol, figures, nets_dir, references,
             threads) -> tuple[dict, dict]:
    """({model: Run}, {model: prepared run}) of one group; a net that fails says why in its Run."""
    engine, reported = make_engine(engine_name, threads=threads), REPORTED[engine_name]
    runs, prepared = {}, {}
    for model, paper_name, paper_hw, _ in group:
        ms, fps = figures.get((paper_name, format_hxw(paper_hw)), (None, None))
        run = Run(model, paper_name, reported, run_size(model, paper_hw),
                  protocol.repeats * protocol.rounds, tuple(paper_hw), paper_ms=ms, paper_fps=fps)
        runs[model] = run
        try:
            net = prepare_net(timing_net(model, paper_hw)[0])
            write_net(net.param, nets_dir / f"{model}_{engine_name}_{format_hxw(run.input_hw)}.prototxt")
            prepared[model] = engine.prepare(net)
            if reference_engine is not None:
                reference = _reference_outputs(reference_engine, net, (model, run.input_hw), references)
                run.error = _check_against_caffe(prepared[model], reference)
        except (EngineError, NetDefinitionError, RegistryError, ValueError) as err:
            run.error = str(err)
    return runs, prepared


def measure_group(engine_name: str, group: list[tuple], protocol: Protocol, threads: int,
                  figures: dict, nets_dir: Path, check: bool,
                  references: dict | None = None) -> tuple[list[Run], dict]:
    """Time one size group on one engine in interleaved rounds; (runs, round medians).
    `check`: compare each net's output with pycaffe's (kept in `references` for the next engine).
    `figures`: the paper's {(paper name, "HxW"): (ms, fps)} to put beside each run."""
    reported = REPORTED[engine_name]
    reference_engine = make_engine("pycaffe", threads=threads) if check else None
    runs, prepared = _prepare(engine_name, reference_engine, group, protocol, figures, nets_dir,
                              references, threads)
    bar = tqdm(total=len(prepared) * protocol.rounds, unit="run", file=sys.stderr, leave=False,
               desc=f"{reported} {format_hxw(next(iter(runs.values())).input_hw)}")
    try:
        result = compare(prepared, protocol, progress=lambda _: bar.update(1)) if prepared else \
            {"timings": {}, "round_medians_ms": {}, "errors": {}}
    finally:
        bar.close()
        for p in prepared.values():
            p.close()
    for model, why in result["errors"].items():
        runs[model].error = why
    setting = {**asdict(protocol), "threads": threads, "interleaved": True}
    machine = describe_machine()
    for model, timing in result["timings"].items():
        run = runs[model]
        for key, value in timing_record(timing, setting, reported, machine).items():
            setattr(run, key, value)
        run.fps, run.busy = 1000.0 / timing.median_ms, timing.busy
        last = getattr(prepared[model], "last", None)
        run.layers = (last or {}).get("layers", [])
    return list(runs.values()), result["round_medians_ms"]


def head_to_head(round_medians: dict) -> dict | None:
    """DF1-Seg/ICNet FPS ratio = ICNet ms / DF1-Seg ms, from the same rounds."""
    if "df1seg" not in round_medians or ICNET not in round_medians:
        return None
    return ratio_interval(round_medians[ICNET], round_medians["df1seg"])


def measured_models(runs: list[Run]) -> dict:
    """The `make tables` view of the `caffe time` runs (tools.report.timings.models_view),
    keyed by the paper's size."""
    return models_view({**asdict(r), "model": r.paper_name, "input_hw": r.paper_hw, "run_hw": r.input_hw}
                       for r in runs if r.engine == "caffe" and r.median_ms)


def summary(runs: list[Run], ratios: dict, figures: dict, protocols: dict, threads: int,
            engines: dict) -> dict:
    """What results.json holds: the machine, the engines, the runs, the DF1-Seg/ICNet ratio
    per engine beside the paper's, and the models view `make tables` reads."""
    paper = figures.get(("DF1-Seg", "1024x2048"), (None, None))[1], figures.get(("ICNet", "1025x2049"), (None, None))[1]
    head = {"paper": paper[0] / paper[1] if all(paper) else None}
    for engine, r in ratios.items():
        head[engine] = r["ratio"] if r else None
        head[f"{engine}_ci95"] = list(r["ci95"]) if r else None
    return {
        "machine": describe_machine(), "engines": engines,
        "threads": threads,
        "protocol": {engine: {**asdict(protocol), "threads": threads, "interleaved": True,
                              "statistic": STATISTIC}
                     for engine, protocol in protocols.items()},
        "busy": any(r.busy for r in runs if r.busy is not None),
        "runs": [asdict(r) for r in runs],
        "df1seg_over_icnet": head,
        "engine": "caffe time", "models": measured_models(runs),
    }


@dataclass
class Settings:
    """How `make bench` measures: passes per net at full size and at Table 4's sizes, split
    into `rounds` interleaved rounds after `warmup` untimed passes, on `threads` threads."""
    iterations: int = 100
    table4_iterations: int = 10
    rounds: int = 5
    warmup: int = 1
    threads: int = 1
    table4: bool = True


def bench(models: list[str], engines: dict, settings: Settings, nets_dir: Path, figures: dict,
          on_update: Callable[[dict], None]) -> tuple[list[Run], dict]:
    """Every size group (plan) on every engine: `engines` maps an engine to its passes per net
    (None: the group's); `on_update(data)` gets the summary after every group and engine (to
    write it: nothing measured is lost).  Returns (runs, the last summary)."""
    s = settings
    described = {REPORTED[e]: make_engine(e, threads=s.threads).describe() for e in engines}
    runs, ratios, protocols, data, references = [], {}, {}, {}, {}
    groups = plan(models, s.table4, s.iterations, s.table4_iterations)
    for g, group in enumerate(tqdm(groups, desc="bench", unit="size", file=sys.stderr)):
        for engine, passes in engines.items():
            if engine in SECOND_ENGINES and g > 0:
                continue   # second engines at full size only: Table 4 is a `caffe time` table
            protocol = Protocol.splitting(passes or group[0][3], s.rounds, warmup=s.warmup)
            measured, medians = measure_group(engine, group, protocol, s.threads, figures, nets_dir,
                                              check=engine in SECOND_ENGINES, references=references)
            runs += measured
            if g == 0:
                ratios[REPORTED[engine]] = head_to_head(medians)
                protocols[REPORTED[engine]] = protocol
            data = summary(runs, ratios, figures, protocols, s.threads, described)
            on_update(data)
        references.clear()   # the references of one size group (full-size outputs: ~160 MB a net)
    return runs, data


def table_rows(models: list[str], hw: tuple[int, int], engines: list[str], protocol: Protocol,
               threads: int, nets_dir: Path, extra: dict) -> list[dict]:
    """The paper-table rows of `models` at `hw` (``make bench-paper``): per model its names, the
    size asked and run, per engine a timing record (None where the engine could not run it) and
    why not (``errors``); `extra` is added to every row (Table 4's "paper_size")."""
    rows = {m: {"model": display_name(m), "name": m, **extra, "input_hw": list(hw), "run_hw": None,
                "measured": {}, "errors": {}} for m in models}
    group = [(m, display_name(m), hw, protocol.repeats * protocol.rounds) for m in models]
    for engine in engines:
        runs, _ = measure_group(engine, group, protocol, threads, {}, nets_dir, check=False)
        for run in runs:
            row, key = rows[run.model], REPORTED[engine]
            row["run_hw"] = list(run.input_hw)
            row["measured"][key] = {k: getattr(run, k) for k in TIMING_KEYS} if run.median_ms else None
            if run.error:
                row["errors"][key] = run.error
    return list(rows.values())
