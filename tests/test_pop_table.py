"""`python -m solvers.pop_table` (make pop-table) for real: the demo's data and space, a Caffe LUT,
real pycaffe trainings cut to a few iterations; resumed without training anything twice; a table
made for another task refused in one line."""
import csv
import json
import subprocess
import sys

import pytest

from pop.trained_table import read_table_csv
from solvers.pop_demo_setup import prepare

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "solvers.pop_table", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("pop_table")
    files = prepare(d / "demo")
    lut = d / "lut.json"
    out = subprocess.run([sys.executable, "-m", "pop", "lut", "build", "--space", files["space"], "--lut", lut,
                          "--backend", "caffe", "--threads", "1", "--calibrate", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return d, files, lut


def _args(d, files, lut, *extra):
    return ["--task", files["task"], "--space", files["space"], "--lut", lut, "--out", d / "out",
            "--workdir", d / "runs", "--iterations", 2, "--quiet", *extra]


def test_trains_the_first_models_then_resumes_where_it_stopped(demo):
    d, files, lut = demo
    first = _cli(*_args(d, files, lut, "--models", 1))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("2 trainings run; 1 of 125 models trained under every seed")
    table = read_table_csv(d / "out" / "table.csv")
    assert len(table.latency_ms) == 125 and len(table.complete()) == 1
    rows = list(csv.reader((d / "out" / "table.csv").read_text().splitlines()))
    assert rows[0] == ["encoding", "latency_ms", "accuracy_seed0", "accuracy_seed1"]
    assert sum(1 for r in rows[1:] if r[2] and r[3]) == 1 and sum(1 for r in rows[1:] if not r[2]) == 124

    again = _cli(*_args(d, files, lut, "--models", 2))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("2 trainings run; 2 of 125 models trained under every seed")
    meta = json.loads((d / "out" / "table.json").read_text())
    assert meta["trainings_done"] == 4 and meta["trainings_planned"] == 250 and meta["seeds"] == [0, 1]
    assert meta["task"]["iterations"] == 2 and meta["machine"]["cpu"] and meta["lut_platform"]["backend"] == "caffe"
    assert meta["stats"]["models"] == 2 and "seed_noise_pct" in meta["stats"]
    assert (d / "out" / "table.png").stat().st_size > 1000 and (d / "out" / "space.yaml").is_file()


@pytest.mark.parametrize("extra, problem", [
    (["--iterations", 3], "made with another task: iterations 2 (now 3)"),
    (["--seeds", 0, 2], "made with seeds [0, 1], not [0, 2]"),
    (["--workers", 0], "--workers and --models must be >= 1"),
])
def test_a_table_of_another_task_or_bad_flags_stop_in_one_line(demo, extra, problem):
    d, files, lut = demo
    if not (d / "out" / "table.json").is_file():
        assert _cli(*_args(d, files, lut, "--models", 1)).returncode == 0
    out = _cli(*_args(d, files, lut, "--models", 1), *extra)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], out.stderr
