"""The table of trainings (pop.trained_table), the CSV evaluator's named columns and the replay
benchmark (pop.replay) on a table written here: a small space, a FLOPs-proxy LUT and two seeds
of accuracies made from the surrogate with different noise seeds."""
import itertools
import json

import numpy as np
import pytest
import yaml

from pop.evaluators import CsvReplay, EvaluationError, Surrogate, make_evaluator
from pop.lut import FlopsProxy, table_from_model
from pop.order import precedes
from pop.replay import load_replay, replay, run
from pop.space import Space
from pop.space_config import SpaceConfig
from pop.trained_table import TableError, TrainedTable, read_table_csv, table_stats
from prototxt_gen.encoding import parse_backbone

SPACE = {"stages": [{"block": "basic", "widths": [64, 128], "min_depth": 1, "max_depth": 2},
                    {"block": "basic", "widths": [128, 256], "min_depth": 1, "max_depth": 2},
                    {"block": "basic", "widths": [256, 512], "min_depth": 1, "max_depth": 1}],
         "input_size": [32, 32], "num_classes": 10, "latency_ms": [0.0, 1000.0]}


def _write_table(d, noise=0.01, models=None):
    """A table directory like make pop-table's: space.yaml, lut.json, table.csv (two seeds)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "space.yaml").write_text(yaml.safe_dump(SPACE))
    config = SpaceConfig.load(d / "space.yaml")
    lut = table_from_model(config, FlopsProxy())
    lut.save(d / "lut.json")
    space = Space.enumerate(config, lut)
    table = TrainedTable((0, 1))
    for i in range(space.size):
        enc = space.encoding(i)
        table.latency_ms[enc] = float(space.latency[i])
        if models is None or i < models:
            table.accuracy[enc] = {s: Surrogate(seed=s, noise=noise, max_violation=1.0).evaluate(enc) for s in (0, 1)}
    (d / "table.csv").write_text(table.to_csv())
    return space, table


def test_table_csv_round_trip_and_empty_cells(tmp_path):
    _, table = _write_table(tmp_path / "t", models=5)
    back = read_table_csv(tmp_path / "t" / "table.csv")
    assert back.seeds == (0, 1) and list(back.latency_ms) == list(table.latency_ms)
    assert len(back.complete()) == 5 and all(not a for e, a in back.accuracy.items() if e not in back.complete())
    first = next(iter(table.accuracy))
    assert back.accuracy[first][1] == pytest.approx(table.accuracy[first][1], abs=1e-6)


@pytest.mark.parametrize("text, problem", [
    ("enc,acc\n", "expected a header"),
    ("encoding,latency_ms,accuracy_s0\n", "accuracy_seedN"),
    ('encoding,latency_ms,accuracy_seed0\n"[(64),(128),(256)]",1.0\n', "2 fields, the header has 3"),
    ('encoding,latency_ms,accuracy_seed0\n"[(64),(128),(256)]",fast,0.5\n', "could not convert"),
])
def test_bad_table_csv_is_named(tmp_path, text, problem):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=problem):
        read_table_csv(path)


def test_csv_evaluator_reads_a_named_column(tmp_path):
    _, table = _write_table(tmp_path / "t", models=3)
    path = tmp_path / "t" / "table.csv"
    enc = next(iter(table.accuracy))
    for seed in (0, 1):
        ev = make_evaluator(f"csv:{path}#accuracy_seed{seed}")
        assert ev.evaluate(enc, None) == pytest.approx(table.accuracy[enc][seed], abs=1e-6)
        assert len(ev.table) == 3          # empty cells are models not trained
    untrained = list(table.latency_ms)[5]
    with pytest.raises(EvaluationError, match="no accuracy for .* \\(column accuracy_seed0\\)"):
        make_evaluator(f"csv:{path}#accuracy_seed0").evaluate(untrained, None)
    with pytest.raises(EvaluationError, match="no header naming the column 'accuracy_seed7'"):
        CsvReplay(path, column="accuracy_seed7")
    # without a column, the old two-column files still read
    plain = tmp_path / "plain.csv"
    plain.write_text("encoding,accuracy\n[(64),(128),(256)],71.5\n")
    assert CsvReplay(plain).evaluate("[(64),(128),(256)]", None) == pytest.approx(0.715)


def test_table_stats_count_noise_and_inverted_pairs(tmp_path):
    _, table = _write_table(tmp_path / "t", noise=0.02)
    stats = table_stats(table)
    full = table.complete()
    diffs = [abs(a[0] - a[1]) for a in full.values()]
    assert stats["models"] == len(full) and stats["seed_noise_pct"] == pytest.approx(100 * np.mean(diffs))
    pairs = [(a, b) for a, b in itertools.permutations(full, 2) if precedes(parse_backbone(a), parse_backbone(b))]
    inverted = sum(full[b][0] < full[a][0] for a, b in pairs)
    assert stats["inverted_pairs_by_seed"]["0"]["comparable_pairs"] == len(pairs)
    assert stats["inverted_pairs_pct"] == pytest.approx(100 * inverted / len(pairs))
    assert 0 < inverted < len(pairs)       # the noise is strong enough to invert some, not all


def test_replay_scores_every_method_on_the_mean_of_the_seeds(tmp_path):
    _write_table(tmp_path / "t", noise=0.01)
    table = load_replay(tmp_path / "t")
    assert np.allclose(table.truth, (table.seen[0] + table.seen[1]) / 2)
    methods = ("pop", "pop_noise_aware", "random", "nsga2", "tpe_order")
    entry, curves = replay(table, seeds=3, methods=methods, max_asks=300, log=lambda *_: None)
    assert entry["models"] == table.size == 50 and entry["seeds"] == 3
    for m in methods:
        per_seed = entry["trainings_to_99pct_per_seed"][m]
        assert len(per_seed) == 3 and all(n is None or 1 <= n <= table.size for n in per_seed)
        assert 0.0 <= entry["hv_regret_at_budget"][m] <= 100.0
    assert entry["hv_regret_budget"] == round(0.2 * 50)
    assert {"best_pop_variant", "best_pop_vs_nsga2", "seeds_best_pop_fewer"} <= set(entry)
    # random search trains every model within |Ŝ| draws: it always gets there
    assert all(n is not None for n in entry["trainings_to_99pct_per_seed"]["random"])
    assert all(1 <= n <= table.size for n in entry["trainings_run_per_seed"]["nsga2"])


def test_tpe_stops_at_the_draws_cap_and_says_how_far_it_got(tmp_path):
    _write_table(tmp_path / "t", noise=0.01)
    entry, _ = replay(load_replay(tmp_path / "t"), seeds=1, methods=("tpe",), max_asks=60, log=lambda *_: None)
    assert entry["max_asks"] == 60 and 1 <= entry["trainings_run_per_seed"]["tpe"][0] <= 60


def test_replay_writes_real_table_beside_the_other_keys(tmp_path):
    _write_table(tmp_path / "t")
    details = tmp_path / "bench" / "pop_details.json"
    details.parent.mkdir()
    details.write_text(json.dumps({"robustness": [{"level": "none"}]}))
    run(tmp_path / "t", details, seeds=2, methods=("pop", "random"), log=lambda *_: None)
    data = json.loads(details.read_text())
    assert data["robustness"] == [{"level": "none"}]
    keys = {"models", "seeds", "seed_noise_pct", "inverted_pairs_pct", "trainings_to_99pct", "hv_regret_at_budget"}
    assert keys <= set(data["real_table"])
    assert (tmp_path / "bench" / "pop_real_table.png").stat().st_size > 1000


def test_replay_uses_only_models_trained_under_every_seed(tmp_path):
    _write_table(tmp_path / "t", models=9)
    assert load_replay(tmp_path / "t").size == 9
    _write_table(tmp_path / "u", models=1)
    with pytest.raises(TableError, match="1 models trained under every seed; a replay needs 2"):
        load_replay(tmp_path / "u")


def test_replay_refuses_a_table_of_another_space(tmp_path):
    _write_table(tmp_path / "t")
    path = tmp_path / "t" / "table.csv"
    path.write_text(path.read_text() + '"[(64),(128),(1024)]",9.0,0.5,0.5\n')
    with pytest.raises(TableError, match="1 models are not in the space"):
        load_replay(tmp_path / "t")


def test_regret_at_the_budget_equals_a_search_stopped_at_the_budget(tmp_path):
    from pop.algorithm import hypervolume
    from pop.order import suffix_counts
    from pop.search_loop import run_method
    _write_table(tmp_path / "t", noise=0.01)
    table = load_replay(tmp_path / "t")
    entry, _ = replay(table, seeds=1, methods=("random", "nsga2", "pop_noise_aware"), log=lambda *_: None)
    ref = (float(table.space.latency.max()), float(table.truth.min()))
    exhaustive = hypervolume(table.space.latency, table.truth, *ref)
    keys = suffix_counts(table.space.counts, table.space.config.offsets)
    budget = entry["hv_regret_budget"]
    for m in ("random", "nsga2", "pop_noise_aware"):
        early = run_method(m, table.space, keys, table.seen[0], table.truth, 0, budget, ref, exhaustive, 1000,
                           target=1.0)
        assert entry["hv_regret_at_budget"][m] == pytest.approx(100 * (1 - early["final_hv"]))


def test_the_committed_table_of_real_trainings_is_whole_and_replayable():
    """bench/pop_table/ (make pop-table, committed as data): at least 100 models trained under two
    seeds, every one of them a model of its own space at the latency its LUT gives."""
    from pathlib import Path
    directory = Path(__file__).resolve().parent.parent / "bench" / "pop_table"
    table = load_replay(directory)
    assert table.size >= 100 and table.seeds == (0, 1)
    meta = json.loads((directory / "table.json").read_text())
    assert meta["command"].startswith("python -m solvers.pop_table") and meta["machine"]["cpu"]
    assert meta["trainings_done"] == 2 * table.size and meta["stats"]["models"] == table.size
    csv_table = read_table_csv(directory / "table.csv")
    for i, enc in enumerate(table.encodings):
        assert csv_table.latency_ms[enc] == pytest.approx(float(table.space.latency[i]), abs=1e-5)
