"""Solver generation: the paper's ImageNet recipe, batch arithmetic, Cityscapes solver, CLI."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from solvers import solver_recipes as sg


def test_total_batch_is_batch_size_times_iter_size_times_devices():
    b = sg.batch_for(2048, batch_size=64, devices=8)
    assert (b.batch_size, b.iter_size, b.devices, b.total) == (64, 4, 8, 2048)
    assert sg.batch_for(2048, 256, 1).iter_size == 8
    with pytest.raises(sg.RecipeError, match="not a multiple of batch_size 48 x devices 8"):
        sg.batch_for(2048, 48, 8)


def test_imagenet_recipe_matches_the_paper(paper_tables, tmp_path):
    paper = paper_tables["training_imagenet"]
    recipe = sg.load_recipe("imagenet")
    assert recipe["total_batch"] == paper["batch_size"]
    plan = sg.imagenet_solvers("train.prototxt", dataset_size=1281167, batch_size=64, devices=8, recipe=recipe)
    per_epoch = math.ceil(1281167 / 2048)
    assert plan.iterations_per_epoch == per_epoch == 626
    w, m = plan.warmup, plan.main
    assert w.max_iter == math.ceil(paper["warmup"]["epochs"] * 1281167 / 2048) == 3128
    assert m.max_iter == math.ceil(paper["main"]["epochs"] * 1281167 / 2048) == 50046
    assert (w.lr_policy, w.base_lr) == ("fixed", pytest.approx(paper["warmup"]["lr"]))
    assert (m.lr_policy, m.base_lr, m.power) == (paper["lr_policy"], pytest.approx(paper["main"]["base_lr"]),
                                                 pytest.approx(paper["power"]))
    for sp in (w, m):
        assert sp.type == paper["optimizer"]
        assert sp.momentum == pytest.approx(paper["momentum"])
        assert sp.weight_decay == pytest.approx(paper["weight_decay"])
        assert sp.iter_size == 4
    # the written files are SolverParameter text that parses back to the same messages
    wf, mf = plan.write(tmp_path)
    assert text_format.Parse(wf.read_text(), caffe_pb2.SolverParameter()) == w
    assert sg.read_solver(mf) == m


def test_poly_learning_rate_follows_caffe_formula():
    sp = sg.sgd_solver("n.prototxt", base_lr=0.8, lr_policy="poly", power=2, max_iter=100, momentum=0.9,
                       weight_decay=1e-4)
    assert sg.learning_rate(sp, 0) == pytest.approx(0.8)
    assert sg.learning_rate(sp, 50) == pytest.approx(0.8 * 0.25)
    assert sg.learning_rate(sp, 100) == pytest.approx(0.0)


def test_validation_uses_the_test_phase_of_the_same_net():
    sp = sg.sgd_solver("n.prototxt", base_lr=0.1, lr_policy="fixed", max_iter=10, momentum=0.9,
                       weight_decay=0, test_iter=5)
    assert sp.net == "n.prototxt" and not sp.train_net and list(sp.test_iter) == [5]
    sp2 = sg.sgd_solver("t.prototxt", test_net="v.prototxt", test_iter=2, base_lr=0.1, lr_policy="fixed",
                        max_iter=10, momentum=0.9, weight_decay=0)
    assert (sp2.train_net, list(sp2.test_net)) == ("t.prototxt", ["v.prototxt"])


def test_cityscapes_solver_and_overrides():
    recipe = sg.apply_overrides(sg.load_recipe("cityscapes"), ["max_iter=500", "base_lr=0.005"])
    sp = sg.cityscapes_solver("seg_train.prototxt", recipe=recipe)
    assert (sp.lr_policy, sp.max_iter, sp.base_lr) == ("poly", 500, pytest.approx(0.005))
    assert recipe["ignore_label"] == 255 and recipe["num_classes"] == 19
    with pytest.raises(sg.RecipeError, match="unknown key 'max_iters'"):
        sg.apply_overrides(recipe, ["max_iters=1"])


def test_cli_writes_solvers_and_rejects_bad_batches(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "solvers.solver_gen", "imagenet", "--train-net", "t.prototxt",
                         "--batch-size", "128", "--devices", "4", "--out", str(tmp_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "128 x iter_size 4 x devices 4 = 2048" in ok.stdout
    assert sg.read_solver(tmp_path / "solver_main.prototxt").lr_policy == "poly"
    bad = subprocess.run([sys.executable, "-m", "solvers.solver_gen", "imagenet", "--train-net", "t.prototxt",
                          "--batch-size", "100", "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("python -m solvers.solver_gen: error: total batch 2048 is not a multiple")
    assert "Traceback" not in bad.stderr
