"""A study's search spec across releases (issue 23, item 4): a study written by the previous
release (the `pop` attribute without "version") is read as such; a newer version, or fields this
dfseg does not know, is refused with one line naming the version."""
from __future__ import annotations

import json

import optuna
import pytest
import yaml

from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig
from pop.study import ATTR, SPEC_VERSION, SearchSpec, SpecVersionError, create_study, final_state, load_study
from tests.pop_cli import pop

SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2},
                    {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}],
         "input_size": [224, 224], "latency_ms": [0.0, 1e9]}


def previous_release_spec() -> dict:
    """The `pop` attribute exactly as the release before the version field wrote it (written
    out here field by field, not produced by today's code)."""
    cfg = SpaceConfig.from_dict(SPACE)
    return {"space": cfg.to_dict(), "lut": table_from_model(cfg, FlopsProxy()).to_json(), "seed": 3,
            "patience": 20, "budget": 5, "evaluator": "surrogate:seed=1", "lease_timeout": 600.0,
            "rule": "pop", "margin_quantile": 0.9, "sampling": "uniform", "local_share": 0.5}


def _raw_study(tmp_path, attr: dict, name: str = "old") -> str:
    """A study as Optuna holds it, the `pop` attribute set directly."""
    url = f"sqlite:///{tmp_path}/v.db"
    study = optuna.create_study(storage=url, study_name=name, directions=["minimize", "maximize"])
    study.set_user_attr(ATTR, json.loads(json.dumps(attr)))
    return url


def test_new_studies_carry_the_version(tmp_path):
    url = f"sqlite:///{tmp_path}/n.db"
    spec = SearchSpec.from_json(previous_release_spec())
    create_study(url, "new", spec)
    stored = optuna.load_study(study_name="new", storage=url).user_attrs[ATTR]
    assert stored["version"] == SPEC_VERSION == 2
    assert {k: v for k, v in stored.items() if k != "version"} == json.loads(json.dumps(previous_release_spec()))


def test_a_previous_release_study_is_read_and_resumed(tmp_path):
    url = _raw_study(tmp_path, previous_release_spec())
    _, spec = load_study(url, "old")
    assert (spec.seed, spec.patience, spec.budget, spec.evaluator) == (3, 20, 5, "surrogate:seed=1")
    # a worker continues it, `pop report` reads it
    out = pop("worker", "--storage", url, "--study", "old", "--quiet", "--poll", "0.05", "--workdir", tmp_path / "runs")
    assert "trained 5" in out.stdout
    pop("report", "--storage", url, "--study", "old", "--out", tmp_path / "report")
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["trained"] == 5
    # `pop search` with the same settings resumes it (the missing version is not a change)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    out = pop("search", "--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut",
              "--seed", 3, "-K", 20, "--budget", 5, "--evaluator", "surrogate:seed=1", "--storage", url,
              "--study", "old", "--quiet", "--workdir", tmp_path / "runs")
    assert "trained 5" in out.stdout


def test_an_older_spec_without_the_later_fields_takes_their_defaults(tmp_path):
    old = {k: v for k, v in previous_release_spec().items()
           if k not in ("rule", "margin_quantile", "sampling", "local_share")}
    url = _raw_study(tmp_path, old)
    replay, _, spec = final_state(url, "old")
    assert (spec.rule, spec.sampling, spec.local_share) == ("pop", "uniform", 0.5)
    assert replay.space.size > 0


@pytest.mark.parametrize("change, message", [
    ({"version": 3}, "search spec version 3 is not one this dfseg reads (1 to 2); it was written by a newer dfseg"),
    ({"version": 0}, "search spec version 0 is not one this dfseg reads (1 to 2)"),
    ({"version": "2.0"}, "search spec version '2.0' is not one"),
    ({"version": 2, "gpu_budget": 4}, "search spec version 2 has unknown fields gpu_budget"),
    ({"seed": None, "lut": None}, None),   # (removed below: missing fields)
])
def test_an_unknown_version_is_refused_with_one_line(tmp_path, change, message):
    attr = {**previous_release_spec(), **change}
    if message is None:
        attr = {k: v for k, v in attr.items() if k not in change}
        message = "search spec version 1 has missing fields lut, seed"
    url = _raw_study(tmp_path, attr)
    with pytest.raises(SpecVersionError, match="study 'old': " + message.replace("(", r"\(").replace(")", r"\)")):
        load_study(url, "old")
    for command in (["worker", "--workdir", tmp_path / "runs"], ["report", "--out", tmp_path / "report"]):
        out = pop(*command, "--storage", url, "--study", "old", check=False)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr
