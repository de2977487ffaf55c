"""The one timing protocol (docs/measurement.md).

One net: ``warmup`` untimed calls, then ``repeats`` timed calls on one clock.
A comparison (net vs net, engine vs engine): ``rounds`` interleaved rounds, each round times
every contender ``repeats`` times in turn, so a change of load hits all of them alike; the
ratio a/b is estimated per round (same load) and its 95 % interval bootstrapped over rounds.
Each time is reported as median, min and a bootstrap 95 % interval of the median; a spread
(p90/p10 of the samples) above ``busy_spread`` marks the machine as busy.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from .base import EngineError

BOOTSTRAP_RESAMPLES = 2000
BUSY_SPREAD = 1.25   # p90 / p10 of one net's samples above this: someone else used the CPU


@dataclasses.dataclass(frozen=True)
class Protocol:
    warmup: int = 2
    repeats: int = 5
    rounds: int = 3
    clock: str = "perf_counter"      # wall-clock; "process_time" for single-threaded runs
    busy_spread: float = BUSY_SPREAD
    seed: int = 0

    def __post_init__(self):
        if self.warmup < 0 or self.repeats < 1 or self.rounds < 1:
            raise ValueError(f"protocol needs warmup >= 0, repeats >= 1, rounds >= 1 ({self})")
        if self.clock not in ("perf_counter", "process_time"):
            raise ValueError(f"clock {self.clock!r}: perf_counter or process_time")

    def now(self) -> float:
        return getattr(time, self.clock)()

    @classmethod
    def splitting(cls, passes: int, rounds: int, **fields) -> "Protocol":
        """At least `passes` timed passes per contender split into up to `rounds` interleaved
        rounds (never more rounds than passes)."""
        rounds = max(1, min(rounds, passes))
        return cls(repeats=math.ceil(passes / rounds), rounds=rounds, **fields)


@dataclasses.dataclass
class Timing:
    """Samples (ms) of one net on one engine and their summary."""

    samples_ms: list[float]
    median_ms: float
    min_ms: float
    ci95_ms: tuple[float, float]
    spread: float
    busy: bool

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def bootstrap_interval(values: Sequence[float], stat=np.median, seed: int = 0,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of ``stat`` (one value -> a zero-width interval)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    draws = stat(v[rng.integers(0, v.size, (resamples, v.size))], axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(samples_ms: Sequence[float], protocol: Protocol = Protocol()) -> Timing:
    v = np.asarray(samples_ms, dtype=float)
    p10, p90 = np.percentile(v, [10, 90])
    spread = float(p90 / p10) if p10 > 0 else float("inf")
    return Timing([float(x) for x in v], float(np.median(v)), float(v.min()),
                  bootstrap_interval(v, seed=protocol.seed), spread, spread > protocol.busy_spread)


def _timed(run: Callable[[], None], protocol: Protocol, n: int,
           before_each: Callable[[], None] | None = None) -> list[float]:
    """n timed passes; engines with their own clock (``run.timed``) time themselves.
    `before_each` (e.g. a cache flush) runs before every pass, outside the clock."""
    own_clock = getattr(run, "timed", None)
    if own_clock is not None:
        return own_clock(n)
    times = []
    for _ in range(n):
        if before_each is not None:
            before_each()
        start = protocol.now()
        run()
        times.append((protocol.now() - start) * 1e3)
    return times


def _warm_up(run: Callable[[], None], protocol: Protocol) -> None:
    if getattr(run, "timed", None) is None:   # engines with their own clock warm up themselves
        for _ in range(protocol.warmup):
            run()


def time_one(run: Callable[[], None], protocol: Protocol = Protocol(),
             before_each: Callable[[], None] | None = None) -> Timing:
    _warm_up(run, protocol)
    samples = []
    for _ in range(protocol.rounds):   # engines with their own clock give one sample per call
        samples += _timed(run, protocol, protocol.repeats, before_each)
    return summarize(samples, protocol)


def ratio_interval(per_round_a: Sequence[float], per_round_b: Sequence[float],
                   seed: int = 0) -> dict:
    """Ratio a/b: the median of the per-round ratios (both nets of a round ran under the same
    load, so a load that changes between rounds cancels), with a bootstrap 95 % interval over
    rounds."""
    a, b = np.asarray(per_round_a, float), np.asarray(per_round_b, float)
    if a.size != b.size or a.size == 0:
        raise ValueError(f"ratio needs the same rounds for both nets ({a.size} vs {b.size})")
    ratios = a / b
    point = float(np.median(ratios))
    return {"ratio": point, "ci95": bootstrap_interval(ratios, seed=seed),
            "per_round": [float(r) for r in ratios]}


ROUND_STATISTICS = {"median": np.median, "min": np.min}


def compare(runs: Mapping[str, Callable[[], None]], protocol: Protocol = Protocol(),
            progress: Callable[[str], None] | None = None,
            before_each: Callable[[], None] | None = None, round_statistic: str = "median") -> dict:
    """Time every contender in interleaved rounds.  Returns ``{"timings": {name: Timing},
    "round_medians_ms": {name: [...]}, "round_statistic", "errors": {name: why}, "busy": bool,
    "protocol": {...}}``:
    one value per round and contender, the median (or, with ``round_statistic="min"``, the
    fastest) of its `repeats` passes in that round; ratios come from :func:`ratio_interval` on
    them.  `before_each` (e.g. a cache flush) runs before every timed pass, outside the clock."""
    stat = ROUND_STATISTICS[round_statistic]
    names, errors = list(runs), {}

    def failed(name, err) -> None:   # one contender failing does not cost the others' figures
        errors[name] = str(err)
        names.remove(name)

    for name in list(names):
        try:
            _warm_up(runs[name], protocol)
        except EngineError as err:
            failed(name, err)
    samples = {n: [] for n in names}
    per_round = {n: [] for n in names}
    for r in range(protocol.rounds):
        order = list(names) if r % 2 == 0 else names[::-1]   # neither always goes first
        for name in order:
            try:
                t = _timed(runs[name], protocol, protocol.repeats, before_each)
            except EngineError as err:
                failed(name, err)
                del samples[name], per_round[name]
                continue
            samples[name] += t
            per_round[name].append(float(stat(t)))
            if progress:
                progress(name)
    timings = {n: summarize(samples[n], protocol) for n in names}
    return {"timings": timings, "round_medians_ms": per_round, "round_statistic": round_statistic,
            "errors": errors,
            "busy": any(t.busy for t in timings.values()),
            "protocol": {**dataclasses.asdict(protocol), "threads_env": os.environ.get("OMP_NUM_THREADS")}}
