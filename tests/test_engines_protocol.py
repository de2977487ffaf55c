"""The timing protocol with a fake engine: interleaving, intervals, the busy warning."""
import time

import pytest

from tools.engines import Protocol, compare, ratio_interval, summarize, time_one


class FakeEngine:
    """Records the order of calls; each call sleeps for its scripted duration."""

    def __init__(self, log, name, durations_s):
        self.log, self.name, self.durations = log, name, list(durations_s)

    def __call__(self):
        self.log.append(self.name)
        time.sleep(self.durations.pop(0) if len(self.durations) > 1 else self.durations[0])


def test_compare_interleaves_rounds_and_alternates_who_goes_first():
    log = []
    runs = {"a": FakeEngine(log, "a", [0.0]), "b": FakeEngine(log, "b", [0.0])}
    result = compare(runs, Protocol(warmup=1, repeats=2, rounds=3))
    timed = log[2:]   # after one warm-up call each
    assert timed == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert [len(v) for v in result["round_medians_ms"].values()] == [3, 3]


def test_ratio_and_its_interval_recover_a_known_ratio():
    log = []
    runs = {"fast": FakeEngine(log, "fast", [0.004]), "slow": FakeEngine(log, "slow", [0.008])}
    res = compare(runs, Protocol(warmup=0, repeats=3, rounds=5))
    q = ratio_interval(res["round_medians_ms"]["fast"], res["round_medians_ms"]["slow"])
    assert 0.35 < q["ratio"] < 0.65
    assert q["ci95"][0] <= q["ratio"] <= q["ci95"][1]


def test_summary_interval_brackets_median_and_busy_flag_follows_spread():
    quiet = summarize([10.0, 10.1, 10.05, 9.95, 10.02])
    assert quiet.min_ms == 9.95 and quiet.ci95_ms[0] <= quiet.median_ms <= quiet.ci95_ms[1]
    assert not quiet.busy
    busy = summarize([10.0, 10.0, 30.0, 10.0, 25.0, 10.0, 40.0, 10.0, 10.0, 35.0])
    assert busy.busy and busy.spread > 1.25


def test_time_one_runs_warmup_then_repeats_times_rounds():
    log = []
    t = time_one(FakeEngine(log, "x", [0.0]), Protocol(warmup=2, repeats=3, rounds=2))
    assert len(log) == 2 + 6 and len(t.samples_ms) == 6


def test_protocol_rejects_nonsense():
    with pytest.raises(ValueError):
        Protocol(repeats=0)
    with pytest.raises(ValueError):
        Protocol(clock="sundial")


def test_a_failing_contender_keeps_the_others_figures():
    from tools.engines import EngineError

    class Broken:
        calls = 0

        def __call__(self):
            Broken.calls += 1
            if Broken.calls > 2:       # survives warm-up, then fails in round 1
                raise EngineError("out of memory")

    res = compare({"ok": lambda: time.sleep(0.001), "broken": Broken()}, Protocol(warmup=1, repeats=2, rounds=3))
    assert res["errors"] == {"broken": "out of memory"}
    assert len(res["round_medians_ms"]["ok"]) == 3 and "broken" not in res["timings"]


def test_passes_split_into_rounds():
    assert (Protocol.splitting(10, 5).repeats, Protocol.splitting(10, 5).rounds) == (2, 5)
    assert (Protocol.splitting(2, 5).repeats, Protocol.splitting(2, 5).rounds) == (1, 2)   # never more rounds than passes
    assert Protocol.splitting(7, 3, warmup=0).repeats == 3 and Protocol.splitting(7, 3).warmup == 2
