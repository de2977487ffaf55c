"""A worker runs only the package's own evaluators unless its own --evaluator names another
(issue 23): anyone who can write to a shared database must not choose what every worker imports."""
from __future__ import annotations

import os
import sys

import pytest
import yaml

from pop.evaluators import (UntrustedEvaluator, is_trusted, make_evaluator, stored_evaluator,
                            trusted_evaluators)
from pop.lut import FlopsProxy, table_from_model
from pop.space import Space, SpaceConfig
from pop.study import SearchSpec, create_study, load_study
from tests.pop_cli import pop

SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2},
                    {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}],
         "input_size": [224, 224], "latency_ms": [0.0, 1e9]}
CAFFE = "solvers.pop_evaluator:CaffeEvaluator"

# a module that leaves a marker file when it is imported, and an evaluator that works
MARKED = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")

class Eval:
    def evaluate(self, encoding, workdir):
        return 0.5 + 0.001 * len(encoding) % 0.4
"""


def _study(tmp_path, evaluator: str, name: str = "s") -> str:
    """A study written as `pop search --space space.yaml --lut lut.json --seed 1 -K 20 --budget 6
    --evaluator EVALUATOR` writes it (the files left in tmp_path)."""
    url = f"sqlite:///{tmp_path}/trust.db"
    cfg = SpaceConfig.from_dict(SPACE)
    table = table_from_model(cfg, FlopsProxy())
    table.save(tmp_path / "lut.json")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    spec = SearchSpec(cfg.to_dict(), table.to_json(), seed=1, patience=20, budget=6, evaluator=evaluator,
                      lease_timeout=600.0)
    create_study(url, name, spec)
    return url


@pytest.fixture
def marked(tmp_path):
    """(module:Class of a marker-writing module in tmp_path, the marker, env with it importable)."""
    marker = tmp_path / "imported.marker"
    (tmp_path / "marked_eval.py").write_text(MARKED.format(marker=str(marker)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    return "marked_eval:Eval", marker, env


def _worker(url, tmp_path, *extra, **kw):
    return pop("worker", "--storage", url, "--study", "s", "--quiet", "--poll", "0.05",
               "--workdir", tmp_path / "runs", *extra, check=False, **kw)


def _one_line_refusal(out, asks: str):
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"asks for the evaluator {asks!r}" in lines[0]
    assert "--evaluator" in lines[0]


def test_the_package_registers_its_caffe_evaluator():
    """pyproject.toml's entry point, read from the installed metadata (`pip install -e .`)."""
    assert CAFFE in trusted_evaluators()


@pytest.mark.parametrize("spec, trusted", [
    ("surrogate", True), ("surrogate:seed=3,delay=0.1", True), ("csv:/data/acc.csv", True), (CAFFE, True),
    ("oracle", True),   # no ':': make_evaluator's own one-line error, nothing imported
    ("os:system", False), ("marked_eval:Eval", False), ("solvers.pop_evaluator:Other", False),
])
def test_is_trusted(spec, trusted):
    assert is_trusted(spec) is trusted


def test_stored_evaluator_refuses_before_importing(marked, monkeypatch):
    name, marker, _ = marked
    monkeypatch.syspath_prepend(str(marker.parent))
    with pytest.raises(UntrustedEvaluator, match="--evaluator marked_eval:Eval"):
        stored_evaluator(name, "s")
    assert not marker.exists() and "marked_eval" not in sys.modules
    # a name that is not printable text is not echoed as a command to copy
    with pytest.raises(UntrustedEvaluator, match="--evaluator MODULE:CLASS"):
        stored_evaluator("os:system\x1b[2J", "s")
    with pytest.raises(UntrustedEvaluator, match="asks for the evaluator 5,"):
        stored_evaluator(5, "s")   # not even text


def test_worker_refuses_an_unknown_stored_evaluator(tmp_path):
    url = _study(tmp_path, "os:system")
    _one_line_refusal(_worker(url, tmp_path), "os:system")


def test_worker_imports_nothing_the_study_names_unless_told(tmp_path, marked):
    name, marker, env = marked
    url = _study(tmp_path, name)
    out = _worker(url, tmp_path, env=env)
    _one_line_refusal(out, name)
    assert "--evaluator marked_eval:Eval" in out.stderr
    assert not marker.exists(), "the worker imported the study's module"
    # resuming with `pop search` compares settings, never imports the stored evaluator
    out = pop("search", "--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut",
              "--seed", 1, "-K", 20, "--budget", 6, "--storage", url, "--study", "s", "--quiet", check=False, env=env)
    assert out.returncode == 2 and "different settings (evaluator)" in out.stderr, out.stderr
    assert not marker.exists()
    # the worker's own --evaluator is trusted: it runs
    out = _worker(url, tmp_path, "--evaluator", name, env=env)
    assert out.returncode == 0, out.stderr
    assert marker.exists() and "trained " in out.stdout


def test_stock_evaluators_run_without_evaluator_flag(tmp_path):
    cfg = SpaceConfig.from_dict(SPACE)
    space = Space.enumerate(cfg, FlopsProxy())
    sur = make_evaluator("surrogate:seed=2")
    rows = "\n".join(f'"{e}",{sur.evaluate(e):.4f}' for e in space.encodings())
    (tmp_path / "acc.csv").write_text("encoding,accuracy\n" + rows + "\n")
    url = _study(tmp_path, f"csv:{tmp_path / 'acc.csv'}")
    out = _worker(url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "trained " in out.stdout
    _, spec = load_study(url, "s")
    assert spec.evaluator.startswith("csv:")
