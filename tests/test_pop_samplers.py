"""Issue 24, item 1: every stock Optuna multi-objective sampler as a search method (plain and
inside the partial-order sampler) and in the robustness table."""
from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from pop import robustness
from pop.algorithm import hypervolume
from pop.evaluators import Surrogate
from pop.lut import FlopsProxy
from pop.sampler import PartialOrderSampler
from pop.search_loop import (METHODS, OPT_IN_METHODS, STALL_ASKS, STALL_NEW, StallWatch, make_sampler,
                             run_method)
from pop.space import Space, SpaceConfig

TINY = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                   {"widths": [256, 512], "max_depth": 1}],
        "input_size": [64, 64], "latency_ms": [0.0, 1e9]}
NEW = ("tpe", "tpe_order", "nsga3", "nsga3_order")


@pytest.fixture(scope="module")
def tiny():
    return Space.enumerate(SpaceConfig.from_dict(TINY), FlopsProxy())


def test_new_samplers_are_methods_and_tpe_is_optunas_default():
    assert set(NEW) <= set(METHODS) and METHODS[:7] == (
        "pop", "pop_boundary", "pop_noise_aware", "pop_noise_aware_boundary", "random", "nsga2", "nsga2_order")
    assert set(OPT_IN_METHODS) == {"gp", "gp_order"} and not set(OPT_IN_METHODS) & set(METHODS)
    default = optuna.create_study(directions=["minimize", "maximize"]).sampler
    assert type(default) is type(make_sampler("tpe", 0)) is optuna.samplers.TPESampler
    assert isinstance(make_sampler("nsga3", 0), optuna.samplers.NSGAIIISampler)


@pytest.mark.parametrize("method", NEW + OPT_IN_METHODS)
def test_each_new_method_reaches_the_target_or_reports_null_within_budget(tiny, method):
    sur = Surrogate(seed=1)
    truth = np.array([sur.clean_accuracy(tiny.backbone(i)) for i in range(tiny.size)])
    ref = (float(tiny.latency.max()), float(truth.min()))
    exhaustive = hypervolume(tiny.latency, truth, *ref)
    max_asks = 12 if method.startswith("gp") else 4 * tiny.size   # GP: 10 random, then 2 model-based asks
    r = run_method(method, tiny, tiny.order_keys(), truth, truth, 1, tiny.size, ref, exhaustive, max_asks=max_asks)
    curve = r["curve"]
    assert 1 <= len(curve) <= tiny.size and np.all(np.diff(curve) >= -1e-12)
    if r["trainings"] is None:
        assert r["final_hv"] < 0.99
    else:
        assert r["trainings"] == len(curve) and curve[-1] >= 0.99 - 1e-9
    if method in ("tpe_order", "nsga3_order"):   # the order sampler settles Ŝ: it always gets there
        assert r["trainings"] is not None


def test_robustness_table_has_tpe_and_nsga3_at_every_level(tiny, tmp_path):
    details = tmp_path / "pop_details.json"
    methods = ("pop", "nsga2", *NEW)   # the default set's pieces, new ones in full
    entries = robustness.run(tiny, tiny.encodings(), [0], float(tiny.latency.max()), details,
                             measured={"inverted_pairs_pct": 20.0, "source": "test"}, methods=methods,
                             max_asks=tiny.size, log=lambda *_: None)
    data = json.loads(details.read_text())["robustness"]
    assert [e["level"] for e in data] == ["none", "paper", "1pct", "3pct", "10pct", "measured"]
    for e in data:
        assert {"tpe", "nsga3"} <= set(e["trainings_to_99pct"]) and set(e["trainings_to_99pct"]) == set(methods)
        assert all(v is None or 1 <= v <= tiny.size for v in e["trainings_to_99pct"].values())
        assert e["optuna_version"] == optuna.__version__
        assert "best_pop_vs_tpe" in e and "seeds_best_pop_fewer_than_tpe" in e
    assert "tpe" in robustness.table_row(entries[0]) and "nsga3" in robustness.table_row(entries[0])


def test_verdict_against_tpe():
    v = robustness.verdict({"pop": [8, 10], "nsga2": [9, 9], "tpe": [12, None]})
    assert v["best_pop_vs_tpe"] is None and v["seeds_best_pop_fewer_than_tpe"] == 2
    v = robustness.verdict({"pop": [8, 10], "nsga2": [9, 9], "tpe": [6, 12]})
    assert v["best_pop_vs_tpe"] == pytest.approx(1.0) and v["seeds_best_pop_fewer_than_tpe"] == 1
    assert "best_pop_vs_tpe" not in robustness.verdict({"pop": [8], "nsga2": [9]})


# ----------------------------------------------------------------------------- fair to every sampler
WINDOWED = {"stages": [{"widths": [64, 128, 256], "max_depth": 3}, {"widths": [128, 256], "max_depth": 3},
                       {"widths": [256, 512], "max_depth": 3}],
            "input_size": [224, 224], "latency_ms": [1.0, 2.0]}


@pytest.fixture(scope="module")
def windowed():
    """A space whose latency window leaves most parameter draws outside Ŝ."""
    return Space.enumerate(SpaceConfig.from_dict(WINDOWED), FlopsProxy())


def _surrogate_problem(space, seed=0):
    sur = Surrogate(seed=seed)
    truth = np.array([sur.clean_accuracy(space.backbone(i)) for i in range(space.size)])
    ref = (float(space.latency.max()), float(truth.min()))
    return truth, ref, hypervolume(space.latency, truth, *ref)


def test_tpe_learns_from_draws_outside_the_space(windowed):
    """A draw outside Ŝ is a PRUNED trial (as `pop optuna` tells it), which TPE counts among the
    worse ones; told as FAILED, TPE ignored it and proposed one model outside Ŝ at every ask after
    its 10 start-up trials, training nothing more."""
    truth, ref, exhaustive = _surrogate_problem(windowed)
    r = run_method("tpe", windowed, windowed.order_keys(), truth, truth, 0, windowed.size, ref, exhaustive,
                   max_asks=300)
    assert len(r["curve"]) > 30 and r["asks"] <= 300


def test_a_sampler_that_only_redraws_what_it_holds_stops_as_stalled():
    watch = StallWatch(window=5, new=2)
    steps = [watch.ask(new) for new in (True, True, True, False, False, False, False)]
    assert steps == [False] * 6 + [True]          # asks 3..7 brought one new model, < 2
    assert StallWatch(window=5, new=1).ask(False) is False   # never before a whole window


def test_wrapped_sampler_draws_in_its_own_mode(windowed):
    """Inside the partial-order sampler TPE keeps its default independent sampling: it is handed
    its own relative space (empty), not the whole space, which would make it multivariate."""
    seen = []

    class Recording(optuna.samplers.TPESampler):
        def sample_relative(self, study, trial, search_space):
            seen.append(dict(search_space))
            return super().sample_relative(study, trial, search_space)

    sampler = PartialOrderSampler(windowed, base=Recording(seed=0), seed=0, noise_aware=True)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    truth, _, _ = _surrogate_problem(windowed)
    for _ in range(15):
        t = study.ask()
        row = sampler.params.suggest(t)
        study.tell(t, (float(windowed.latency[row]), float(truth[row])))
    assert seen and all(s == {} for s in seen)


def test_robustness_table_is_the_same_for_any_number_of_jobs(tiny, tmp_path):
    kwargs = dict(measured={"inverted_pairs_pct": 20.0, "source": "test"}, methods=("pop_boundary", "tpe", "nsga3"),
                  max_asks=tiny.size, log=lambda *_: None)
    one = robustness.run(tiny, tiny.encodings(), [0, 1], float(tiny.latency.max()), tmp_path / "a.json", **kwargs)
    two = robustness.run(tiny, tiny.encodings(), [0, 1], float(tiny.latency.max()), tmp_path / "b.json", jobs=2,
                         **kwargs)
    strip = [{k: v for k, v in e.items() if k not in ("seconds_per_seed", "plot")} for e in (*one, *two)]
    assert strip[:6] == strip[6:]
    assert one[0]["stopped_per_seed"]["tpe"][0] in ("target", "budget", "asks", "stalled")
    assert one[0]["stall_rule"] == {"asks": STALL_ASKS, "fewer_new_than": STALL_NEW}


def test_an_interrupted_robustness_run_resumes_from_its_finished_searches(tiny, tmp_path, monkeypatch):
    """Every finished search is kept (pop.search_cache); a rerun on the same Ŝ runs none of them
    again and gives the same table; an unreadable record is run again; other settings do not
    reuse them."""
    kwargs = dict(measured={"inverted_pairs_pct": 20.0, "source": "test"}, methods=("pop_boundary", "tpe"),
                  max_asks=tiny.size, cache_dir=tmp_path / "searches", log=lambda *_: None)
    args = (tiny, tiny.encodings(), [0, 1], float(tiny.latency.max()))
    first = robustness.run(*args, tmp_path / "a.json", **kwargs)
    files = sorted((tmp_path / "searches").glob("*/*.json"))
    assert len(files) == 6 * 2 * 2
    ran = []
    real = robustness.run_method
    monkeypatch.setattr(robustness, "run_method", lambda *a, **kw: ran.append(a[0]) or real(*a, **kw))
    again = robustness.run(*args, tmp_path / "b.json", **kwargs)
    assert ran == [] and [{k: v for k, v in e.items() if k != "plot"} for e in again] == \
        [{k: v for k, v in e.items() if k != "plot"} for e in first]
    files[0].write_text('{"level": ')                   # a record cut short
    robustness.run(*args, tmp_path / "c.json", **kwargs)
    assert len(ran) == 1
    robustness.run(*args, tmp_path / "d.json", **dict(kwargs, max_asks=tiny.size - 1))
    assert len(ran) == 1 + 24 and len(list((tmp_path / "searches").iterdir())) == 2
