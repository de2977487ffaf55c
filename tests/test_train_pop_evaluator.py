"""The real POP evaluator: trains candidates through pycaffe in child processes."""
from __future__ import annotations

import json
import time

import pytest

from solvers.pop_evaluator import CaffeEvaluator, ClassificationTask, EvaluationError

# pycaffe must be there wherever the tests run (`make test` builds it): the conftest fixture
# fails without it, never skips
pytestmark = pytest.mark.usefixtures("caffe")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from solvers.digits_data import prepare
    d = prepare(tmp_path_factory.mktemp("digits"), size=32, val=497)
    return ClassificationTask(train_db=d["train_db"], val_db=d["val_db"], val_size=497, val_batch_size=71,
                              num_classes=10, input_size=(32, 32), iterations=40, batch_size=16, base_lr=0.1,
                              mean=(64.0,), scale=1 / 128, rand_h=(28, 36), rand_w=(28, 36))


def test_evaluate_trains_and_returns_validation_accuracy(task, tmp_path):
    ev = CaffeEvaluator(task)
    acc = ev.evaluate("[(64),(128),(256)]", tmp_path / "c0")
    assert 0.5 < acc <= 1.0  # chance is 0.1
    record = json.loads((tmp_path / "c0" / "accuracy.json").read_text())
    assert record["accuracy"] == acc and record["iterations"] == 40
    assert (tmp_path / "c0" / "run" / "curves.png").is_file()
    # a finished candidate is not trained twice (e.g. a worker died before reporting)
    t0 = time.time()
    assert ev.evaluate("[(64),(128),(256)]", tmp_path / "c0") == acc
    assert time.time() - t0 < 1.0


def test_candidates_train_concurrently_in_separate_processes(task, tmp_path):
    ev = CaffeEvaluator(task)
    encs = ["[(64),(128),(256)]", "[(64),(128),(128,256)]"]
    t0 = time.time()
    accs = ev.evaluate_many(encs, tmp_path, workers=2)
    assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    spans = []
    for i in range(2):
        rows = (tmp_path / f"candidate_{i:04d}" / "run" / "train_log.csv").read_text().splitlines()
        assert len(rows) == 41
        spans.append((tmp_path / f"candidate_{i:04d}" / "task.json").stat().st_mtime)
    # both were started before either finished
    finished = min((tmp_path / f"candidate_{i:04d}" / "accuracy.json").stat().st_mtime for i in range(2))
    assert max(spans) < finished


def test_failures_raise_evaluation_error_naming_the_candidate(task, tmp_path):
    with pytest.raises(EvaluationError, match=r"\[\(64\),\(96\),\(256\)\]: training failed .*width 96 not allowed"):
        CaffeEvaluator(task).evaluate("[(64),(96),(256)]", tmp_path / "bad")


def test_task_from_the_environment(task, tmp_path, monkeypatch):
    import yaml
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task.to_dict()))
    monkeypatch.setenv("DFSEG_POP_TASK", str(path))
    assert CaffeEvaluator().task == task
    monkeypatch.delenv("DFSEG_POP_TASK")
    with pytest.raises(EvaluationError, match="set \\$DFSEG_POP_TASK"):
        CaffeEvaluator()
    path.write_text("train_db: x\nepochs: 3\n")
    with pytest.raises(EvaluationError, match="unknown keys \\['epochs'\\]"):
        CaffeEvaluator(path)
