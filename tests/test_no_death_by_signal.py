"""Damaged files must not kill a tool by a signal (issue 11): a truncated LMDB (SIGBUS in the
memory map) and truncated training snapshots (SIGABRT in Caffe's CHECKs) give one line, and
training falls back to the newest sound snapshot."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.data import lmdb_store as lt

REPO = Path(__file__).resolve().parent.parent


def _env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def small_lmdb(tmp_path_factory):
    path = tmp_path_factory.mktemp("lmdb") / "db"
    images = np.random.default_rng(0).integers(0, 255, (200, 24, 24, 3), dtype=np.uint8)
    lt.write_arrays_lmdb(images, np.arange(200) % 10, path)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.999, 2 * 4096, 4096, 10, 0])
def test_verify_a_truncated_lmdb(small_lmdb, tmp_path, keep):
    db = tmp_path / "db"
    shutil.copytree(small_lmdb, db)
    size = (db / "data.mdb").stat().st_size
    os.truncate(db / "data.mdb", int(size * keep) if keep < 1 else keep)
    out = run("-m", "tools.lmdb_tools", "verify", db)
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])    # was -7: SIGBUS
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0], out.stderr
    assert ("truncated" in lines[0]) or ("not a readable LMDB" in lines[0])


def test_open_readonly_refuses_a_truncated_lmdb_in_process(small_lmdb, tmp_path):
    db = tmp_path / "db"
    shutil.copytree(small_lmdb, db)
    os.truncate(db / "data.mdb", (db / "data.mdb").stat().st_size - 4096)
    with pytest.raises(lt.DataError, match="truncated LMDB file .* 4096 bytes are missing"):
        lt.open_readonly(db)
    assert lt.verify_lmdb(small_lmdb)["count"] == 200     # a whole one still reads


# ------------------------------------------------------------------ training snapshots

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 30-iteration training with snapshots at 20 and 30 (two kept)."""
    from tools.runtime.caffe import caffe_available
    ok, why = caffe_available()
    if not ok:
        pytest.fail(f"pycaffe is needed here: {why}")
    from tests.test_train_runner import _solver
    from solvers.digits_data import prepare
    root = tmp_path_factory.mktemp("snap")
    digits = prepare(root / "digits", size=32, val=497)
    solver = _solver(digits, root, max_iter=30)
    out = run("-m", "solvers.runner", "train", solver, "--workdir", root / "run", "--snapshot-every", 10)
    assert out.returncode == 0, out.stderr[-2000:]
    snaps = sorted(p.name for p in (root / "run" / "snapshots").iterdir())
    assert "snap_iter_20.done" in snaps and "snap_iter_30.done" in snaps
    return solver, root / "run"


def _resume(trained, tmp_path, damage):
    solver, workdir = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    (copy / "result.json").unlink()
    for name, keep in damage.items():
        path = copy / "snapshots" / name
        os.truncate(path, int(path.stat().st_size * keep))
    # Caffe wrote absolute paths into the solver states: point them at the copy's files.
    from prototxt_gen import caffe_pb2
    for state_path in (copy / "snapshots").glob("*.solverstate"):
        state = caffe_pb2.SolverState()
        try:
            state.ParseFromString(state_path.read_bytes())
        except Exception:
            continue
        state.learned_net = str(copy / "snapshots" / Path(state.learned_net).name)
        state_path.write_bytes(state.SerializeToString())
    return run("-m", "solvers.runner", "train", solver, "--workdir", copy, "--snapshot-every", 10), copy


@pytest.mark.parametrize("damaged", ["snap_iter_30.solverstate", "snap_iter_30.caffemodel"])
def test_a_truncated_snapshot_falls_back_to_the_previous_one(trained, tmp_path, damaged):
    out, copy = _resume(trained, tmp_path, {damaged: 0.5})
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])   # was -6: SIGABRT
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("warning: snapshot")]
    assert len(warnings) == 1 and "iteration 30" in warnings[0] and damaged in warnings[0], out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["resumed_from"] == 20
    assert json.loads((copy / "result.json").read_text())["iterations"] == 30


def test_all_snapshots_bad_starts_again(trained, tmp_path):
    out, _ = _resume(trained, tmp_path, {"snap_iter_30.caffemodel": 0.9, "snap_iter_20.solverstate": 0.3})
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("warning: snapshot")]
    assert [("iteration 30" in w, "iteration 20" in w) for w in warnings] == [(True, False), (False, True)]
    assert json.loads(out.stdout.strip().splitlines()[-1])["resumed_from"] is None


def test_truncated_initial_weights_are_one_line(trained, tmp_path):
    solver, workdir = trained
    weights = tmp_path / "init.caffemodel"
    data = (workdir / "final.caffemodel").read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    out = run("-m", "solvers.runner", "train", solver, "--workdir", tmp_path / "fresh", "--weights", weights)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(weights) in lines[0], out.stderr
