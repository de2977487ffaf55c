"""The one timing-result schema (docs/measurement.md, "Timing records").

Every time a bench writes (tools.bench, tools.paper_bench, tools.ort_bench, tools.tensorrt_bench,
the GPU checks) is a *timing record*::

    {"median_ms": 12.3,           # the figure: the median of the timed passes
     "min_ms": 11.9,              # the fastest pass
     "ci95_ms": [12.1, 12.6],     # bootstrap 95 % interval of the median
     "samples": 20,               # how many timed passes
     "protocol": {...},           # how: warm-up, repeats, rounds, clock, threads
     "engine": "caffe time",      # what ran them (with the precision where it has one)
     "machine": {...}}            # where: CPU (and GPU) description

and the results files that `make tables` reads (``results.json``, ``onnxruntime.json``,
``tensorrt.json``) hold a *models view* of them: ``{"models": {MODEL: {"resolution": {"HxW":
record + "fps" and "run_hw"}}}}`` (:func:`models_view`).  :func:`checked_median` is the one
reader: a file written before this schema (``forward_ms``, a bare number) is an error that
names the file and the key.
"""
from __future__ import annotations

import math
from typing import Iterable

from dfseg.base.errors import InputError
from dfseg.base.sizes import format_hxw

__all__ = ["TIMING_KEYS", "TimingSchemaError", "checked_median", "models_view", "timing_record"]

TIMING_KEYS = ("median_ms", "min_ms", "ci95_ms", "samples", "protocol", "engine", "machine")
#: keys of the files written before the one schema, each with what it meant
OLD_KEYS = {"forward_ms": "median_ms", "ms": "median_ms", "passes": "samples", "times_ms": "samples"}
SCHEMA_HINT = (f"a timing record has {', '.join(TIMING_KEYS)} (docs/measurement.md); rerun the "
               f"bench that wrote the file")


class TimingSchemaError(InputError, ValueError):
    """A results file or entry that is not in the one timing schema; names the file and key."""


def _rounded(value: float, digits: int | None) -> float:
    return float(value) if digits is None else round(float(value), digits)


def timing_record(timing, protocol: dict, engine: str, machine: dict, digits: int | None = None) -> dict:
    """The record of one time: `timing` is a tools.engines.protocol.Timing (or anything with its
    ``median_ms``, ``min_ms``, ``ci95_ms`` and ``samples_ms``); `digits` rounds the times."""
    return {"median_ms": _rounded(timing.median_ms, digits), "min_ms": _rounded(timing.min_ms, digits),
            "ci95_ms": [_rounded(v, digits) for v in timing.ci95_ms], "samples": len(timing.samples_ms),
            "protocol": dict(protocol), "engine": engine, "machine": dict(machine)}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(entry) -> str | None:
    """Why `entry` is no timing record (None: it is one)."""
    if _number(entry):
        return "a bare number, not a timing record"
    if not isinstance(entry, dict):
        return f"expected a timing record (an object), got {type(entry).__name__}"
    old = [key for key in OLD_KEYS if key in entry and OLD_KEYS[key] not in entry]
    if old:
        return f"\"{old[0]}\" is the old name of \"{OLD_KEYS[old[0]]}\" (written before the one timing schema)"
    missing = [key for key in TIMING_KEYS if key not in entry]
    if missing:
        return f"lacks \"{missing[0]}\"" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    if not (_number(entry["median_ms"]) and entry["median_ms"] > 0):
        return f"\"median_ms\" is {entry['median_ms']!r}, not a positive time"
    ci = entry["ci95_ms"]
    if not (isinstance(ci, list) and len(ci) == 2 and all(_number(v) for v in ci)):
        return f"\"ci95_ms\" is {ci!r}, not [low, high]"
    if not (isinstance(entry["samples"], int) and entry["samples"] >= 1):
        return f"\"samples\" is {entry['samples']!r}, not a count of timed passes"
    return None


def checked_median(entry, where: str) -> float:
    """The median of a timing record; TimingSchemaError ``WHERE: problem; hint`` for anything
    else (`where` names the file and the key path, e.g. ``bench/x.json: models.ICNet...``)."""
    problem = _problem(entry)
    if problem:
        raise TimingSchemaError(f"{where}: {problem}; {SCHEMA_HINT}")
    return float(entry["median_ms"])


def models_view(rows: Iterable[dict], prefer: str | None = None) -> dict:
    """The `make tables` view of measured rows: ``{model: {"resolution": {"HxW" asked:
    record + "fps", "run_hw"}}}``.  Each row has "model" (the paper's name), "input_hw" (the
    size asked), "run_hw" (the size run) and a timing record's keys; with several precisions
    of one size (rows with "precision"), the `prefer`red one is the entry (its name under
    "precision") and every precision's median is kept as "<precision>_ms"."""
    models: dict = {}
    for r in rows:
        key = format_hxw(tuple(r["input_hw"]))
        slot = models.setdefault(r["model"], {"resolution": {}})["resolution"]
        if key in slot and r.get("precision") != prefer:
            slot[key][f"{r['precision']}_ms"] = r["median_ms"]
            continue
        entry = {**{k: r[k] for k in TIMING_KEYS}, "fps": round(1000.0 / r["median_ms"], 3),
                 "run_hw": format_hxw(tuple(r["run_hw"]))}
        if "precision" in r:
            entry["precision"] = r["precision"]
            entry.update({k: v for k, v in slot.get(key, {}).items() if k.endswith("_ms")
                          and k not in TIMING_KEYS})
            entry[f"{r['precision']}_ms"] = r["median_ms"]
        slot[key] = entry
    return models
