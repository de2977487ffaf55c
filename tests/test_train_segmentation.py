"""Segmentation smoke run: DF-Seg on a generated data set in the exact Cityscapes layout,
trained with pycaffe, scored by the Cityscapes evaluator."""
from __future__ import annotations

import importlib.util

import pytest

from solvers.caffe_env import caffe_available

OK, WHY = caffe_available()
HAVE_EVAL = importlib.util.find_spec("tools.cityscapes_eval") is not None
pytestmark = [pytest.mark.skipif(not OK, reason=f"needs pycaffe: {WHY}"),
              pytest.mark.skipif(not HAVE_EVAL, reason="needs tools.cityscapes_eval (the evaluation module)")]


def test_seg_smoke_loss_falls_and_miou_is_scored(tmp_path):
    from solvers.seg_smoke import run
    from tools.cityscapes_eval import parse_cityscapes_eval
    s = run(tmp_path, iterations=60, per_city=3, progress=False)
    # the generated tree is the Cityscapes layout, with real label ids
    assert (tmp_path / "cityscapes" / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png").is_file()
    assert (tmp_path / "cityscapes" / "gtFine" / "val" / "frankfurt" / "frankfurt_000002_000019_gtFine_labelIds.png").is_file()
    assert s["loss_last"] < 0.7 * s["loss_first"]
    assert 0.0 <= s["miou"] <= 1.0
    # the written report reads back (same layout as the release's evaluation log)
    parsed = parse_cityscapes_eval((tmp_path / "pred_val.txt").read_text())
    assert parsed["miou"] == pytest.approx(s["miou"], abs=5e-4)
    assert parsed["classes"]["road"] == pytest.approx(s["classes"]["road"], abs=5e-4)
