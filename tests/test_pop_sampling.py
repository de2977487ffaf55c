"""Boundary sampling (pop.sampling): where Algorithm 1 draws its next model, and only that."""
from __future__ import annotations

import numpy as np
import pytest

from pop.algorithm import PartialOrderPruning, hypervolume
from pop.evaluators import Surrogate
from pop.lut import FlopsProxy, table_from_model
from pop.noise_aware import pruning_state
from pop.order import predecessors_mask
from pop.sampling import check_sampling, local_draw, nearest_group
from pop.search_loop import HypervolumeCurve, run_algorithm1
from pop.space import Space, SpaceConfig
from pop.study import Replay, SearchSpec
from tests.pop_cli import pop

SPACE = {"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                    {"widths": [128, 256], "max_depth": 4},
                    {"widths": [256, 512], "max_depth": 3}],
         "input_size": [224, 224], "latency_ms": [1.0, 2.5]}


@pytest.fixture(scope="module")
def space():
    return Space.enumerate(SpaceConfig.from_dict(SPACE), FlopsProxy())


def accuracies(space, seed):
    sur = Surrogate(seed=seed)
    return np.array([sur.evaluate(e) for e in space.encodings()])


def run_to_end(state, acc, budget=10 ** 9):
    while not state.finished and len(state.D) < budget:
        state.add(state.next_candidate(), acc[state.next_candidate()])
    return state


def test_nearest_group_is_the_closest_free_rows(space):
    keys = space.order_keys()
    rng = np.random.default_rng(0)
    free = rng.random(space.size) < 0.3
    centre = 17
    group = nearest_group(keys, free, centre, np.random.default_rng(1))
    distance = np.abs(keys.astype(int) - keys[centre].astype(int)).sum(axis=1)
    best = distance[free].min()
    assert set(group) == set(np.flatnonzero(free & (distance == best)))
    assert nearest_group(keys, np.zeros(space.size, bool), centre, rng).size == 0


def test_local_share_is_the_share_of_local_draws(space):
    keys, free = space.order_keys(), np.ones(space.size, bool)
    local = [local_draw(keys, free, (3, 40), seed=5, trained=n, local_share=0.3).size > 0 for n in range(2000)]
    assert 0.26 < np.mean(local) < 0.34
    assert local_draw(keys, free, (), seed=5, trained=7, local_share=1.0).size == 0   # no boundary yet
    for bad in (("nearest", 0.5), ("boundary", 0.0), ("boundary", 1.5)):
        with pytest.raises(ValueError):
            check_sampling(*bad)


def test_boundary_sampling_changes_the_draws_not_the_pruning(space):
    """Every draw is unsettled, a local draw is next to a boundary model of the state it was
    drawn in, and P is exactly what Algorithm 1's rule gives for the trained set."""
    keys, acc = space.order_keys(), accuracies(space, 0)
    state = PartialOrderPruning(keys, space.latency, seed=2, patience=10 ** 9, sampling="boundary", local_share=1.0)
    local_hits = 0
    while not state.finished:
        x = state.next_candidate()
        assert not (state.trained[x] or state.pruned[x])
        if state.boundary:
            free = np.flatnonzero(~(state.pruned | state.trained))
            k = keys.astype(int)
            local_hits += any(np.abs(k[x] - k[b]).sum() == np.abs(k[free] - k[b]).sum(axis=1).min()
                              for b in state.boundary)
        state.add(x, acc[x])
    assert local_hits == len(state.D) - 1
    expected = np.zeros(space.size, bool)
    for w in state.D:
        y_lat = min(space.latency[y] for y in state.D if acc[y] >= acc[w])
        expected |= predecessors_mask(keys, w) & (space.latency >= y_lat)
    assert np.array_equal(state.pruned, expected)
    assert state.pruned_not_trained > 0 and not (~(state.pruned | state.trained)).any()


def test_boundary_draws_are_a_function_of_seed_and_results(space):
    acc = accuracies(space, 1)
    runs = [run_to_end(pruning_state("noise-aware", space.order_keys(), space.latency, 4, 10 ** 9,
                                     sampling="boundary"), acc, budget=120) for _ in range(2)]
    assert runs[0].D == runs[1].D
    uniform = run_to_end(PartialOrderPruning(space.order_keys(), space.latency, 4, 10 ** 9), acc, budget=120)
    assert runs[0].D != uniform.D


def test_boundary_sampling_reaches_the_boundary_with_fewer_trainings(space):
    """The reason it exists: trainings to 99 % of the exhaustive hypervolume, 5 seeds."""
    keys, lat = space.order_keys(), space.latency
    hi = float(lat.max())
    needed = {"uniform": [], "boundary": []}
    for seed in range(5):
        acc = accuracies(space, seed)
        ref = (hi, float(acc.min()))
        exhaustive = hypervolume(lat, acc, *ref)
        for sampling in needed:
            state = PartialOrderPruning(keys, lat, seed, 10 ** 9, sampling=sampling)
            r = run_algorithm1(state, lat, acc, acc, space.size, HypervolumeCurve(ref, exhaustive))
            needed[sampling].append(r["trainings"])
    assert np.mean(needed["boundary"]) < 0.8 * np.mean(needed["uniform"]), needed


def test_replay_consumes_speculative_results_of_other_workers(space):
    """Two workers claim from the same state; with boundary sampling the other worker's result
    is seldom the next draw of the later state, and must still be used, not left idle."""
    cfg = SpaceConfig.from_dict(SPACE)
    spec = SearchSpec(space=cfg.to_dict(), lut=table_from_model(cfg, FlopsProxy()).to_json(), seed=3,
                      patience=10 ** 9, budget=80, sampling="boundary")
    acc = accuracies(space, 2)
    results: dict[int, float] = {}
    running: list[int] = []
    while True:
        replay = Replay(space, spec)
        replay.advance(results)
        if replay.done:
            break
        while len(running) < 2:
            cand = next(replay.state.candidates(exclude=set(results) | set(running)), None)
            if cand is None:
                break
            running.append(cand)
        if not running:
            break
        done = running.pop(0)
        results[done] = float(acc[done])
    state = replay.state
    idle = [c for c in results if not state.trained[c] and not state.pruned[c]]
    assert idle == []
    assert len(state.D) == 80


def test_search_cli_stores_the_sampling(tmp_path):
    import yaml
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    base = ["search", "--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut",
            "--storage", f"sqlite:///{tmp_path}/pop.db", "--study", "b", "--quiet", "--workdir", tmp_path / "runs",
            "--seed", 1, "-K", 10]
    pop(*base, "--sampling", "boundary")
    import optuna
    stored = optuna.load_study(study_name="b", storage=f"sqlite:///{tmp_path}/pop.db").user_attrs["pop"]
    assert stored["sampling"] == "boundary" and stored["local_share"] == 0.5
    again = pop(*base, check=False)                    # same study, other sampling: refused
    assert again.returncode == 2 and "sampling" in again.stderr
    bad = pop(*base[:-4], "--study", "c", "--local-share", "0", check=False)
    assert bad.returncode == 2 and "--local-share" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_two_worker_processes_with_boundary_sampling_waste_nothing(tmp_path):
    """Real `pop worker` processes on one SQLite study: no candidate trained twice, and every
    completed training is in D or settled by the order, but for the one the other worker was
    still training when D reached the budget."""
    import subprocess
    import sys

    import optuna
    import yaml
    from pop.study import final_state
    from tests.pop_cli import REPO

    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    url = f"sqlite:///{tmp_path}/pop.db"
    pop("search", "--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut",
        "--storage", url, "--study", "w", "--seed", 6, "-K", 10 ** 6, "--budget", 40, "--sampling", "boundary",
        "--evaluator", "surrogate:seed=2,delay=0.05", "--create-only")
    workers = [subprocess.Popen([sys.executable, "-m", "pop", "worker", "--storage", url, "--study", "w",
                                 "--poll", "0.05", "--quiet", "--workdir", str(tmp_path / "runs")],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    replay, study, _ = final_state(url, "w")
    complete = [t.user_attrs["candidate"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert len(complete) == len(set(complete))
    assert len(replay.state.D) == 40 and replay.done
    idle = [c for c in complete if not replay.state.trained[c] and not replay.state.pruned[c]]
    # a result pruned by one consumed before it is settled, not idle
    assert len(idle) <= 1, (idle, len(complete))
