"""Segmentation smoke run: DF-Seg on a generated data set in the exact Cityscapes layout,
trained with pycaffe, scored by the Cityscapes evaluator."""
from __future__ import annotations

import pytest

# pycaffe must be there wherever the tests run (`make test` builds it): the conftest fixture
# fails without it, never skips
pytestmark = pytest.mark.usefixtures("caffe")


def test_seg_smoke_loss_falls_and_miou_is_scored(tmp_path):
    from solvers.segmentation_smoke import run
    from tools.report.cityscapes_log import parse_cityscapes_eval
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
