"""Issue 15: the noise-aware pruning rule, the partial-order Optuna sampler, the robustness
benchmark's JSON, and both on the `pop` CLI's storage."""
from __future__ import annotations

import json
from tests.pop_cli import pop
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from pop import benchmark, robustness
from pop.algorithm import PartialOrderPruning, hypervolume
from pop.evaluators import Surrogate
from pop.lut import FlopsProxy, table_from_model
from pop.noise import noisy
from pop.noise_aware import NoiseAwarePruning, estimate_margin, trained_pair_diffs
from pop.sampler import PartialOrderSampler, SpaceParams
from pop.search_loop import METHODS, run_method
from pop.space import Space, SpaceConfig
from pop.study import final_state

REPO = Path(__file__).resolve().parent.parent
SPACE = {"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                    {"widths": [128, 256], "max_depth": 3},
                    {"widths": [256, 512], "max_depth": 3}],
         "input_size": [224, 224], "latency_ms": [1.0, 2.0]}


@pytest.fixture(scope="module")
def space():
    return Space.enumerate(SpaceConfig.from_dict(SPACE), FlopsProxy())


def accuracies(space, seed=0, sigma=0.0):
    sur = Surrogate(seed=seed)
    acc = np.array([sur.evaluate(e) for e in space.encodings()])
    return noisy(acc, sigma, seed) if sigma else acc


# ----------------------------------------------------------------------------- noise-aware rule
def test_noise_aware_rule_is_algorithm_1_when_no_trained_pair_is_inverted(space):
    keys, lat = space.order_keys(), space.latency
    sur = Surrogate(seed=3, noise=0.0)
    acc = np.array([sur.clean_accuracy(space.backbone(i)) for i in range(space.size)])  # the order holds
    plain, aware = PartialOrderPruning(keys, lat, 3, 15), NoiseAwarePruning(keys, lat, 3, 15)
    for state in (plain, aware):
        while not state.finished:
            x = state.next_candidate()
            state.add(x, acc[x])
    assert aware.margin == 0.0 and aware.rebuilds == 0
    assert aware.D == plain.D and aware.boundary == plain.boundary
    assert np.array_equal(aware.pruned, plain.pruned)


def test_margin_comes_from_trained_pairs_that_violate_the_order():
    keys = np.array([[0, 0], [1, 0], [1, 1], [2, 2]], np.uint8)   # a chain: 0 ≺ 1 ≺ 2 ≺ 3
    acc = np.array([0.50, 0.60, 0.55, 0.70])                      # 1 and 2 inverted by 0.05
    diffs = trained_pair_diffs(keys, np.arange(4), acc)
    assert sorted(np.round(diffs, 6)) == sorted(np.round([-0.1, -0.05, -0.2, 0.05, -0.1, -0.15], 6))
    assert 0.04 < estimate_margin(diffs, 0.99) <= 0.05                 # just below the worst violation
    assert estimate_margin(diffs, 0.5) == 0.0                            # the median pair holds
    assert estimate_margin(diffs[diffs < 0], 0.9) == 0.0          # no violation: the paper's rule


def test_noise_aware_rule_prunes_less_and_reaches_every_model(space):
    keys, lat = space.order_keys(), space.latency
    acc = accuracies(space, seed=1, sigma=0.03)
    plain, aware = PartialOrderPruning(keys, lat, 1, 10 ** 9), NoiseAwarePruning(keys, lat, 1, 10 ** 9)
    while (x := plain.next_candidate()) is not None:
        plain.add(x, acc[x])
    assert len(plain.D) < space.size                              # Algorithm 1 stops: the rest is pruned
    for x in plain.D:                                             # the same trained models, fed in order
        aware.add(x, acc[x])
    assert aware.margin > 0
    assert not np.any(aware.pruned & ~plain.pruned)               # a margin only re-admits
    assert (aware.pruned & ~aware.trained).sum() < (plain.pruned & ~plain.trained).sum()
    while (x := aware.next_candidate()) is not None:              # ...and it never stops early:
        aware.add(x, acc[x])                                      # the margin escalates when Ŝ \ P is empty
    assert len(aware.D) == space.size and aware.escalations > 0


# ----------------------------------------------------------------------------- sampler
def test_space_params_round_trip_and_repair(space):
    params = SpaceParams(space)
    for row in range(space.size):
        assert params.decode(params.encode(row)) == row
    # a draw with decreasing widths is repaired, not rejected: stage 0 (256, 64) -> (256, 256)
    wide = {"depth0": 2, "w0_0": 2, "w0_1": 0, "w0_2": 0, "depth1": 1, "w1_0": 1, "depth2": 1, "w2_0": 1}
    row = params.decode(wide)
    assert row is None or space.encoding(row).startswith("[(256,256)")


def test_bench_and_robustness_run_one_search_loop():
    """`make bench-pop`'s comparison and the robustness runs share pop.search_loop: the same
    trainings to 99 % HV as the bench's own loops gave before they were merged into it
    (POP 98, random 198, NSGA-II 182 on this space, seed 2)."""
    same = {"stages": [{"widths": [64, 128, 256], "max_depth": d} for d in (3, 3, 2)],
            "input_size": [64, 64], "latency_ms": [0.0, 1e9]}
    space = Space.enumerate(SpaceConfig.from_dict(same), FlopsProxy())
    acc = accuracies(space, seed=2)
    ref = (space.latency.max(), float(acc.min()))
    exhaustive = hypervolume(space.latency, acc, *ref)
    got = {m: run_method(m, space, space.order_keys(), acc, acc, 2, space.size, ref, exhaustive,
                         max_asks=20 * space.size)["trainings"] for m in ("pop", "random", "nsga2")}
    assert got == {"pop": 98, "random": 198, "nsga2": 182}
    assert robustness.run_method is run_method and benchmark.run_method is run_method


def test_sampler_never_proposes_what_the_order_settles(space):
    acc = accuracies(space, seed=4)
    sampler = PartialOrderSampler(space, base=optuna.samplers.NSGAIISampler(seed=4, population_size=10), seed=4)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    trained = []
    for _ in range(60):
        t = study.ask()
        settled_before = sampler.state.pruned | sampler.state.trained   # state as of this ask
        row = sampler.params.suggest(t)
        assert row is not None and not settled_before[row]
        trained.append(row)
        study.tell(t, (float(space.latency[row]), float(acc[row])))
    assert len(set(trained)) == len(trained)                     # no model trained twice
    assert sampler.skipped > 0                                   # NSGA-II did propose settled models
    assert sampler.state.pruned_not_trained > 0


# ----------------------------------------------------------------------------- the benchmark's JSON
def test_robustness_json_has_every_level_and_keeps_other_keys(space, tmp_path):
    details = tmp_path / "pop_details.json"
    details.write_text(json.dumps({"lut_validation": {"n": 30, "within_10pct": 1.0}, "per_seed": [1]}))
    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps({"inverted_pairs_pct": 20.0, "source": "test"}))
    entries = robustness.run(space, space.encodings(), [0, 1], float(space.latency.max()), details,
                             measured=measured, max_asks=300, log=lambda *_: None)
    data = json.loads(details.read_text())
    assert data["lut_validation"] == {"n": 30, "within_10pct": 1.0} and data["per_seed"] == [1]
    assert data["robustness"] == json.loads(json.dumps(entries))
    levels = data["robustness"]
    assert [e["level"] for e in levels] == ["none", "paper", "1pct", "3pct", "10pct", "measured"]
    for e in levels:
        assert set(e["trainings_to_99pct"]) == set(robustness.DEFAULT_METHODS)
        assert all(v is None or v >= 1 for v in e["trainings_to_99pct"].values())
        assert all((r is None) == (v is not None) for r, v in
                   zip(e["final_hv_regret_pct"].values(), e["trainings_to_99pct"].values()))
        for m, runs in e["trainings_run_per_seed"].items():
            assert all(v is None or v == n for v, n in zip(e["trainings_to_99pct_per_seed"][m], runs))
    pct = [e["inverted_pairs_pct"] for e in levels]
    assert pct[0] == 0.0 and pct[1] < 0.5
    assert [round(p) for p in pct[2:]] == [1, 3, 10, 20]
    assert Path(levels[0]["plot"]).stat().st_size > 10_000


def test_measured_level_reads_a_demo_order_check(tmp_path):
    f = tmp_path / "partial_order.json"
    f.write_text(json.dumps({"comparable_pairs": 40, "held": 30}))
    assert robustness.load_measured(f)["inverted_pairs_pct"] == 25.0
    f.write_text(json.dumps({"comparable_pairs": 40, "held": 10}))
    with pytest.raises(ValueError, match="50 %"):
        robustness.load_measured(f)
    assert 0 < robustness.load_measured()["inverted_pairs_pct"] < 50   # the committed figure


# ----------------------------------------------------------------------------- the CLI, one storage
@pytest.fixture
def files(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    return tmp_path


def test_noise_aware_search_and_order_sampler_share_one_storage(files, space):
    url = f"sqlite:///{files}/pop.db"
    common = ["--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
              "--storage", url, "--quiet", "--workdir", files / "runs"]
    ev = "surrogate:noise=0.01,max_violation=1"
    pop("search", *common, "--study", "aware", "--rule", "noise-aware", "-K", 10, "--evaluator", ev)
    replay, _, spec = final_state(url, "aware")
    sur = Surrogate(noise=0.01, max_violation=1)
    expected = NoiseAwarePruning(space.order_keys(), space.latency, 0, 10)
    while not expected.finished:
        x = expected.next_candidate()
        expected.add(x, sur.evaluate(space.encoding(x)))
    assert spec.rule == "noise-aware" and replay.state.D == expected.D and replay.state.margin == expected.margin

    out = pop("optuna", *common, "--study", "nsga", "--budget", 25, "--evaluator", ev, "--population", 10)
    assert "trained 25" in out.stdout
    study = optuna.load_study(study_name="nsga", storage=url)
    rows = [t.user_attrs["candidate"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("trained")]
    assert len(rows) == len(set(rows)) == 25
    again = pop("optuna", *common, "--study", "nsga", "--budget", 25, "--evaluator", ev, "--population", 10,
                "--order", "none", check=False)
    assert again.returncode == 2 and "different settings (rule)" in again.stderr
    worker = pop("worker", "--storage", url, "--study", "nsga", "--quiet", check=False)
    assert worker.returncode == 2 and "not a POP study" in worker.stderr


def test_verdict_compares_the_best_pop_variant_with_nsga2():
    v = robustness.verdict({"pop": [None, 5], "pop_noise_aware": [10, 12], "nsga2": [11, 11]})
    assert v["best_pop_variant"] == "pop_noise_aware" and v["best_pop_vs_nsga2"] == pytest.approx(1.0)
    assert v["seeds_best_pop_fewer"] == 1 and not v["pruning_pays"]
    v = robustness.verdict({"pop": [8, 9], "pop_noise_aware": [10, 12], "nsga2": [9, None]})
    assert v["best_pop_variant"] == "pop" and v["best_pop_vs_nsga2"] is None and v["seeds_best_pop_fewer"] == 2


def test_an_interrupted_bench_leaves_the_last_complete_results(space, tmp_path, monkeypatch):
    """`python -m pop.bench` replaces bench/pop.json and pop_details.json only once its run is
    whole: a ^C during the robustness searches leaves the last complete results as they were."""
    from types import SimpleNamespace
    from pop import bench as pop_bench, replay
    out, details = tmp_path / "pop.json", tmp_path / "pop_details.json"
    out.write_text('{"last": 1}\n')
    details.write_text('{"robustness": "last run"}\n')
    monkeypatch.setattr(pop_bench, "_search_space", lambda args: (
        "proxy", SimpleNamespace(platform={"cpu": "test"}), space, (0.0, float(space.latency.max()))))
    real_robustness, real_replay = robustness.run, replay.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(pop_bench.robustness, "run", interrupted)
    argv = ["--seeds", "1", "--validate", "0", "--out", str(out)]
    assert pop_bench.main(argv) == 130
    assert out.read_text() == '{"last": 1}\n' and details.read_text() == '{"robustness": "last run"}\n'
    monkeypatch.setattr(pop_bench.robustness, "run", lambda *a, **kw: real_robustness(
        *a, **dict(kw, methods=("pop_boundary",), jobs=1, log=lambda *_: None)))
    monkeypatch.setattr(pop_bench.replay, "run", lambda table, path, seeds: real_replay(
        table, path, 1, methods=("pop_boundary",), log=lambda *_: None))
    assert pop_bench.main(argv) == 0
    data = json.loads(details.read_text())
    assert {"per_seed", "robustness", "real_table"} <= set(data) and "last" not in json.loads(out.read_text())
    assert not list(tmp_path.glob("*.partial.json"))
