"""`pop` on SQLite: search, crash and resume, errors; `python -m pop` as users run it."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from tests.pop_cli import pop
from pathlib import Path

import pytest
import yaml

from pop.algorithm import run
from pop.evaluators import Surrogate
from pop.lut import FlopsProxy, table_from_model
from pop.order import suffix_counts
from pop.space import Space, SpaceConfig
from pop.study import final_state

REPO = Path(__file__).resolve().parent.parent
SPACE = {"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                    {"widths": [128, 256], "max_depth": 3},
                    {"widths": [256, 512], "max_depth": 3}],
         "input_size": [224, 224], "latency_ms": [1.0, 2.0]}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    cfg = SpaceConfig.from_dict(SPACE)
    table_from_model(cfg, FlopsProxy()).save(tmp_path / "lut.json")
    return tmp_path


def expected_run(seed, patience, budget=None, evaluator_seed=0):
    cfg = SpaceConfig.from_dict(SPACE)
    space = Space.enumerate(cfg, FlopsProxy())
    sur = Surrogate(seed=evaluator_seed)
    return space, run(suffix_counts(space.counts, cfg.offsets), space.latency,
                      lambda i: sur.evaluate(space.encoding(i)), seed=seed, patience=patience, budget=budget)


def test_space_command(files):
    out = pop("space", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
              "--json", files / "s.json")
    assert "|S^| = 423 architectures" in out.stdout
    assert json.loads((files / "s.json").read_text())["space_size"] == 423


def test_search_equals_in_memory_algorithm(files):
    url = f"sqlite:///{files}/pop.db"
    out = pop("search", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
              "--storage", url, "--study", "s", "--seed", 4, "-K", 10, "--quiet", "--workdir", files / "runs")
    space, state = expected_run(seed=4, patience=10)
    replay, study, _ = final_state(url, "s")
    assert replay.state.D == state.D
    assert replay.state.boundary == state.boundary
    assert f"trained {len(state.D)}, pruned {state.pruned_not_trained}" in out.stdout
    # each trial carries both objectives: latency (minimise) and accuracy (maximise)
    t = study.best_trials[0]
    assert t.values[0] == pytest.approx(space.latency[t.user_attrs["candidate"]])


def test_killed_search_resumes_without_losing_results(files):
    url = f"sqlite:///{files}/pop.db"
    args = ["search", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
            "--storage", url, "--study", "r", "--seed", 7, "-K", 10, "--quiet", "--lease-timeout", 1,
            "--evaluator", "surrogate:delay=0.05", "--workdir", files / "runs"]
    proc = subprocess.Popen([sys.executable, "-m", "pop", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    import optuna
    from optuna.trial import TrialState
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            n = len(optuna.load_study(study_name="r", storage=url).get_trials(states=(TrialState.COMPLETE,)))
        except KeyError:
            continue
        if n >= 5:
            break
    if n < 5:  # say why rather than fail later on a missing study
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"pop search had {n} completed trials after 60 s (exit {proc.returncode}): "
                    f"{err.decode()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.values for t in optuna.load_study(study_name="r", storage=url).get_trials(
        states=(TrialState.COMPLETE,))}
    assert len(before) >= 5
    pop("worker", "--storage", url, "--study", "r", "--quiet", "--poll", "0.2", "--workdir", files / "runs")
    replay, study, _ = final_state(url, "r")
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[k] == v for k, v in before.items())  # nothing computed was lost or redone
    cands = [t.user_attrs["candidate"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(cands) == len(set(cands))
    _, state = expected_run(seed=7, patience=10)
    assert replay.state.D == state.D and replay.state.boundary == state.boundary


def test_decoder_search_uses_the_same_engine(tmp_path):
    import itertools
    choices = ["K", 32, 64, 128, 256, 512]
    widths = {"K": 19, 32: 32, 64: 64, 128: 128, 256: 256, 512: 512}
    lat = {",".join(map(str, s)): 10 + sum(widths[c] * f for c, f in zip(s, (0.02, 0.01, 0.005)))
           for s in itertools.product(choices, repeat=3)}
    (tmp_path / "dec.yaml").write_text(yaml.safe_dump({"decoder": {
        "backbone": "[(64,64,64),(128,128,128),(256,256,256,512)]", "num_classes": 19,
        "wc_choices": choices, "latency_ms": lat}}))
    url = f"sqlite:///{tmp_path}/d.db"
    out = pop("search", "--decoder", tmp_path / "dec.yaml", "--storage", url, "--study", "dec", "-K", 8,
              "--quiet", "--workdir", tmp_path / "runs")
    replay, _, _ = final_state(url, "dec")
    assert replay.space.size == 216 and len(replay.state.D) < 216
    assert replay.state.pruned_not_trained > 0
    assert ":[K," in out.stdout or ":[32," in out.stdout


@pytest.mark.parametrize("args, message", [
    (["space", "--max-depth", "2,2,2", "--lut", "{d}/missing.json"], "cannot read"),
    (["space", "--space", "{d}/space.yaml", "--lut", "{d}/lut.json", "--allow-foreign-lut", "--latency", "50,60"],
     "S^ is empty"),
    (["space", "--space", "{d}/space.yaml", "--lut", "{d}/lut.json"], "another platform"),
    (["lut", "build", "--space", "{d}/space.yaml", "--lut", "{d}/new.json", "--backend", "abacus"],
     "unknown backend 'abacus'"),
    (["worker", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--study", "x"], "cannot open"),
    (["worker", "--storage", "sqlite:///{d}/empty.db", "--study", "nothing"], "no study 'nothing'"),
    (["space", "--max-depth", "2,x,2", "--lut", "{d}/lut.json"], "--max-depth"),
    (["search", "--space", "{d}/space.yaml", "--lut", "{d}/lut.json", "--allow-foreign-lut",
      "--storage", "sqlite:///{d}/p.db", "--evaluator", "oracle"], "evaluator 'oracle'"),
])
def test_bad_input_is_one_line_exit_2(files, args, message):
    out = pop(*[a.format(d=files) for a in args], check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_help_uses_the_papers_words():
    out = pop("--help")
    for words in ("Partial Order Pruning", "look-up table", "[Tmin, Tmax]", "boundary"):
        assert words in out.stdout
    assert "unchanged for K iterations" in pop("search", "--help").stdout


def test_report_writes_figures_and_one_html_page(files):
    url = f"sqlite:///{files}/pop.db"
    pop("search", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
        "--storage", url, "--study", "rep", "-K", 6, "--quiet", "--workdir", files / "runs")
    pop("report", "--storage", url, "--study", "rep", "--out", files / "report")
    out = files / "report"
    for name in ("fig5_pruned_regions.png", "fig7_trained_boundary.png", "fig8a_pruned_vs_trained.png",
                 "fig8b_accuracy_vs_precedents.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "src=\"http" not in page
    replay, _, _ = final_state(url, "rep")
    for i in replay.state.boundary:
        assert replay.space.encoding(i) in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] == len(replay.state.D) and summary["pruned"] == replay.state.pruned_not_trained
    assert (out / "boundary.csv").read_text().count("\n") == len(replay.state.boundary) + 1


def test_create_only_then_worker(files):
    url = f"sqlite:///{files}/pop.db"
    out = pop("search", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
              "--storage", url, "--study", "c", "--seed", 2, "-K", 5, "--create-only")
    assert "pop worker --storage" in out.stdout
    import optuna
    assert optuna.load_study(study_name="c", storage=url).trials == []
    pop("worker", "--storage", url, "--study", "c", "--quiet", "--workdir", files / "runs")
    _, state = expected_run(seed=2, patience=5)
    replay, _, _ = final_state(url, "c")
    assert replay.state.D == state.D


def test_usage_mistakes_are_one_line():
    for args in (["frobnicate"], ["lut"], ["lut", "build"], ["search", "--seed", "x"]):
        out = pop(*args, check=False)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
