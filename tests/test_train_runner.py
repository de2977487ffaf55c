"""pycaffe training: loss falls, SIGKILL + resume, NaN stop, warm-up -> main hand-over, top-k.

These tests run real Caffe (our CPU build) on scikit-learn's digits at 32x32 with a tiny
DF-style backbone; each training takes a few seconds."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# pycaffe must be there wherever the tests run (`make test` builds it): the conftest fixture
# fails without it, never skips
pytestmark = pytest.mark.usefixtures("caffe")

ENCODING = "[(64),(128),(256)]"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from solvers.digits_data import prepare
    return prepare(tmp_path_factory.mktemp("digits"), size=32, val=497)


def _solver(digits, tmp_path, *, max_iter=40, base_lr=0.1, policy="poly", snapshot=0, name="solver.prototxt"):
    from prototxt_gen.generate import to_text
    from solvers.net_data import classification_train_net
    from solvers.solver_recipes import sgd_solver, write_solver
    net = classification_train_net(ENCODING, train_source=digits["train_db"], val_source=digits["val_db"],
                                   num_classes=10, input_hw=(32, 32), batch_size=16, val_batch_size=71,
                                   mean=(64.0,), scale=1 / 128, rand_h=(28, 36), rand_w=(28, 36))
    (tmp_path / "net.prototxt").write_text(to_text(net))
    sp = sgd_solver("net.prototxt", base_lr=base_lr, lr_policy=policy, power=2 if policy == "poly" else None,
                    max_iter=max_iter, momentum=0.9, weight_decay=1e-4, test_iter=7, snapshot=snapshot,
                    random_seed=1)
    return write_solver(sp, tmp_path / name)


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def test_training_lowers_the_loss_and_writes_curves(digits, tmp_path):
    from solvers.training import train
    result = train(_solver(digits, tmp_path, max_iter=60), tmp_path / "run", snapshot_every=20, progress=False)
    rows = _log(tmp_path / "run" / "train_log.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 61))
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert result.last_val["accuracy/top-1"] > 0.6  # chance is 0.1
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000
    assert [int(r["iteration"]) for r in _log(tmp_path / "run" / "val_log.csv")] == [60]
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").glob("*.done"))
    assert snaps == ["snap_iter_40.done", "snap_iter_60.done"]  # two kept


def test_sigkill_then_resume_continues_from_the_newest_snapshot(digits, tmp_path):
    solver = _solver(digits, tmp_path, max_iter=60)
    cmd = [sys.executable, "-m", "solvers.runner", "train", str(solver), "--snapshot-every", "10"]
    # reference: the same training, uninterrupted
    ref = subprocess.run(cmd + ["--workdir", str(tmp_path / "ref")], env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "run"
    proc = subprocess.Popen(cmd + ["--workdir", str(run)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "snapshots" / "snap_iter_20.done").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before the kill"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(_log(run / "train_log.csv"))
    assert killed_at < 60
    again = subprocess.run(cmd + ["--workdir", str(run)], env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads(again.stdout.strip().splitlines()[-1])["resumed_from"]
    assert resumed >= 20 and f"resumed from iteration {resumed}" in again.stderr
    rows = _log(run / "train_log.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 61))  # no gap, no duplicate
    # same solver state and same data stream position: the curve continues exactly as without the kill
    ref_loss = [float(r["loss"]) for r in _log(tmp_path / "ref" / "train_log.csv")]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], ref_loss, rtol=1e-3, atol=1e-4)


def test_nan_stops_with_a_clear_message_and_keeps_the_good_snapshot(digits, tmp_path):
    solver = _solver(digits, tmp_path, max_iter=200, base_lr=1e4, policy="fixed")
    r = subprocess.run([sys.executable, "-m", "solvers.runner", "train", str(solver), "--workdir",
                        str(tmp_path / "run"), "--snapshot-every", "1"], env=_env(), capture_output=True, text=True)
    assert r.returncode == 3, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m solvers.runner: error: training diverged at iteration ")
    assert "Traceback" not in r.stderr
    assert "last good snapshot: iteration" in last or "no snapshot was taken" in last
    diverged_at = int(last.split("iteration ")[1].split(":")[0])
    snaps = [int(p.stem.split("_")[-1]) for p in (tmp_path / "run" / "snapshots").glob("*.done")]
    assert all(s < diverged_at for s in snaps)  # nothing written from the diverged state
    assert not (tmp_path / "run" / "final.caffemodel").exists()


def test_warmup_weights_are_carried_into_the_main_phase(digits, tmp_path):
    from tools.runtime.caffe import load_caffe
    from solvers.training import train_phases
    caffe = load_caffe()
    warm = _solver(digits, tmp_path, max_iter=10, base_lr=0.1, policy="fixed", name="warm.prototxt")
    main = _solver(digits, tmp_path, max_iter=3, base_lr=0.0, policy="fixed", name="main.prototxt")
    results = train_phases([("warmup", warm), ("main", main)], tmp_path / "run", progress=False)
    assert [r.workdir.name for r in results] == ["warmup", "main"]
    net = str(tmp_path / "net.prototxt")
    w = caffe.Net(net, caffe.TEST, weights=str(results[0].final_weights))
    m = caffe.Net(net, caffe.TEST, weights=str(results[1].final_weights))
    fresh = caffe.Net(net, caffe.TEST)
    # lr 0 in the main phase: its convolution weights are exactly the warm-up's final ones
    np.testing.assert_array_equal(m.params["conv1"][0].data, w.params["conv1"][0].data)
    assert not np.allclose(fresh.params["conv1"][0].data, w.params["conv1"][0].data)
    # a finished chain is not trained again
    again = train_phases([("warmup", warm), ("main", main)], tmp_path / "run", progress=False)
    assert again[1].final_weights == results[1].final_weights


def test_topk_centre_crop_evaluation_agrees_with_the_accuracy_layer(digits, tmp_path):
    from prototxt_gen.generate import net_for, to_text
    from prototxt_gen.models import resolve
    from solvers.augment import Transform
    from tools.runtime.caffe import load_caffe
    from solvers.data_sources import ClassificationSource
    from solvers.topk_accuracy import evaluate_classifier, topk_counts
    from solvers.net_data import set_num_classes
    from solvers.training import train
    caffe = load_caffe()
    result = train(_solver(digits, tmp_path, max_iter=40), tmp_path / "run", progress=False)
    deploy = set_num_classes(net_for(resolve(ENCODING), "deploy", input_size=(32, 32)), 10)
    (tmp_path / "deploy.prototxt").write_text(to_text(deploy))
    net = caffe.Net(str(tmp_path / "deploy.prototxt"), caffe.TEST, weights=str(result.final_weights))
    topk = evaluate_classifier(net, ClassificationSource(digits["val_db"]),
                               Transform(crop=(32, 32), mean=(64.0,), scale=1 / 128, train=False), batch=71,
                               progress=False)
    assert topk.count == 497
    assert topk.top1 == pytest.approx(result.last_val["accuracy/top-1"], abs=1e-6)
    assert topk.top5 == pytest.approx(result.last_val["accuracy/top-5"], abs=1e-6)
    cli = subprocess.run([sys.executable, "-m", "solvers.evaluate", str(tmp_path / "deploy.prototxt"),
                          str(result.final_weights), digits["val_db"], "--mean", "64", "--scale", str(1 / 128),
                          "--batch", "71", "--json"], env=_env(), capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout.strip().splitlines()[-1]) == pytest.approx(topk.as_dict())
    scores = np.array([[0.1, 0.5, 0.2, 0.0, 0.9, 0.3], [1, 0, 0, 0, 0, 0]], float)
    assert topk_counts(scores, np.array([1, 5])) == (0, 1)
    assert topk_counts(scores, np.array([4, 0])) == (2, 2)


def test_bad_data_inside_training_is_a_one_line_error(digits, tmp_path):
    from prototxt_gen.generate import to_text
    from solvers.net_data import classification_train_net
    from solvers.solver_recipes import sgd_solver, write_solver
    import cv2
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "list.txt").write_text("ok.png 1\nbroken.png 2\n")
    net = classification_train_net(ENCODING, train_source=str(tmp_path / "list.txt"),
                                   val_source=str(tmp_path / "list.txt"), num_classes=10, input_hw=(32, 32),
                                   batch_size=2)
    (tmp_path / "net.prototxt").write_text(to_text(net))
    write_solver(sgd_solver("net.prototxt", base_lr=0.1, lr_policy="fixed", max_iter=5, momentum=0.9,
                            weight_decay=0), tmp_path / "solver.prototxt")
    r = subprocess.run([sys.executable, "-m", "solvers.runner", "train", str(tmp_path / "solver.prototxt"),
                        "--workdir", str(tmp_path / "run")], env=_env(), capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("python -m solvers.runner: error: ")
    assert "broken.png: cannot decode image" in r.stderr.strip().splitlines()[-1]


def test_backbone_weights_initialise_a_segmentation_net(digits, tmp_path):
    """DF-Seg training starts from an ImageNet-style backbone caffemodel (layers by name)."""
    from prototxt_gen.generate import to_text
    from tools.runtime.caffe import load_caffe
    from solvers.net_data import segmentation_train_net
    from solvers.training import train
    from solvers.solver_recipes import sgd_solver, write_solver
    from tools.data.cityscapes_dataset import make_synthetic, write_lists
    caffe = load_caffe()
    backbone = train(_solver(digits, tmp_path, max_iter=5), tmp_path / "backbone", progress=False)
    make_synthetic(tmp_path / "cs", size=(256, 256), per_city=1)
    lst = write_lists(tmp_path / "cs", "train", tmp_path / "lists")
    net = segmentation_train_net(ENCODING + ":[K,32,32]", train_list=str(lst), val_list=str(lst), num_classes=19,
                                 crop=(256, 256), test_size=(256, 256), batch_size=1)
    (tmp_path / "seg.prototxt").write_text(to_text(net))
    write_solver(sgd_solver("seg.prototxt", base_lr=0.0, lr_policy="fixed", max_iter=1, momentum=0.9,
                            weight_decay=0), tmp_path / "seg_solver.prototxt")
    seg = train(tmp_path / "seg_solver.prototxt", tmp_path / "seg", weights=[backbone.final_weights], progress=False)
    b = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST, weights=str(backbone.final_weights))
    s = caffe.Net(str(tmp_path / "seg.prototxt"), caffe.TEST, weights=str(seg.final_weights))
    for name in ("conv1", "res2.1.conv1", "res4.1.conv2"):
        np.testing.assert_array_equal(s.params[name][0].data, b.params[name][0].data)
