"""The demo's data set and the partial-order check of trained pairs (Fig. 3b)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tools.lmdb_tools import verify_lmdb


def test_digits_are_a_real_data_set_split_into_lmdbs(tmp_path):
    from solvers.digits import load_digits_images, prepare
    images, labels = load_digits_images(32)
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(10))
    info = prepare(tmp_path, size=32, val=497)
    assert (info["train_size"], info["val_size"]) == (1300, 497)
    train = verify_lmdb(info["train_db"], num_classes=10)
    val = verify_lmdb(info["val_db"], num_classes=10)
    assert train["count"] == 1300 and val["count"] == 497 and train["shapes"] == {"32x32x3": 1300}
    hist = {int(k): v for k, v in val["labels"].items()}
    assert len(hist) == 10 and min(hist.values()) > 25  # every digit is in the validation split
    assert prepare(tmp_path, size=32, val=497) == json.loads((tmp_path / "digits.json").read_text())


@pytest.mark.skipif(importlib.util.find_spec("pop.order") is None, reason="needs the POP engine (pop.order)")
def test_order_check_counts_held_and_violated_pairs(tmp_path):
    from solvers.pop_demo import order_check, trained_results
    results = {"[(64),(128),(256)]": 0.90, "[(64,64),(128),(256)]": 0.95, "[(128),(128),(256)]": 0.85,
               "[(64,64),(128),(256,256)]": 0.96}
    for i, (enc, acc) in enumerate(results.items()):
        (tmp_path / f"{i}").mkdir()
        (tmp_path / f"{i}" / "accuracy.json").write_text(json.dumps({"encoding": enc, "accuracy": acc}))
    assert trained_results(tmp_path) == results
    report = order_check(results)
    pairs = {(p["smaller"], p["larger"]) for p in report["pairs"]}
    assert ("[(64),(128),(256)]", "[(64,64),(128),(256)]") in pairs          # shallower, same widths
    assert ("[(64),(128),(256)]", "[(128),(128),(256)]") in pairs            # narrower, same depth
    assert ("[(64),(128),(256)]", "[(64,64),(128),(256,256)]") in pairs      # closure
    assert ("[(64,64),(128),(256)]", "[(128),(128),(256)]") not in pairs     # incomparable
    assert report["comparable_pairs"] == 4 and report["held"] == 3
    assert report["violations"][0]["larger"] == "[(128),(128),(256)]"
    assert report["min_delta_acc"] == pytest.approx(-0.05)


@pytest.mark.skipif(importlib.util.find_spec("pop.evaluators") is None, reason="needs the POP engine")
def test_the_engine_builds_our_evaluator_from_its_cli_spec(tmp_path, monkeypatch):
    import yaml
    from pop.evaluators import Evaluator, make_evaluator
    from solvers.pop_demo import prepare
    from solvers.pop_evaluator import CaffeEvaluator
    info = prepare(tmp_path)
    monkeypatch.setenv("DFSEG_POP_TASK", info["task"])
    ev = make_evaluator("solvers.pop_evaluator:CaffeEvaluator")
    assert isinstance(ev, CaffeEvaluator) and isinstance(ev, Evaluator)
    assert ev.task.train_db == info["train_db"] and ev.task.input_size == (32, 32)
    space = yaml.safe_load((tmp_path / "space.yaml").read_text())
    assert space["input_size"] == [32, 32] and space["num_classes"] == 10
