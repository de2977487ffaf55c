"""make bench-paper's measuring (real engines, two small models) and the Table 1 / Table 4 rows
that tools.tables builds from it beside the paper's figures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.report.comparison import ComparisonFormatError, comparison_tables, load_paper_bench, plot_fig5
from tools.report.timings import TIMING_KEYS

REPO = Path(__file__).resolve().parent.parent


def test_paper_bench_measures_table1_models_on_every_engine(caffe, tmp_path):
    out = tmp_path / "paper.json"
    r = subprocess.run([sys.executable, "-m", "tools.paper_bench", "--models", "df1,mobilenet_v1",
                        "--iterations", "2", "--rounds", "2", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["table4"] == [] and {row["name"] for row in data["table1"]} == {"df1", "mobilenet_v1"}
    for row in data["table1"]:
        assert row["input_hw"] == [224, 224] and not row["errors"], row["errors"]
        assert set(row["measured"]) == {"caffe", "opencv", "onnxruntime"}
        for engine, timing in row["measured"].items():
            assert set(TIMING_KEYS) <= set(timing) and timing["median_ms"] > 0, engine
            assert timing["engine"] == engine and timing["protocol"]["rounds"] == 2
    assert data["protocol"]["table1"]["rounds"] == 2 and data["threads"] == 1


def test_paper_bench_rejects_unknown_models(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.paper_bench", "--models", "vgg99",
                        "--out", str(tmp_path / "p.json")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "vgg99" in r.stderr and "Traceback" not in r.stderr


def _timing(ms: float, engine: str) -> dict:
    return {"median_ms": ms, "min_ms": ms, "ci95_ms": [ms, ms], "samples": 1,
            "protocol": {"rounds": 1}, "engine": engine, "machine": {"cpu": "test"}}


def test_rows_carry_paper_and_measured_figures_and_plot(paper_tables):
    bench = {"table1": [{"model": "ShuffleNet V2", "measured": {"caffe": _timing(12.0, "caffe"), "opencv": None},
                         "errors": {"opencv": "no layer"}}],
             "table4": [{"model": "DF1-Seg", "paper_size": "1280x720",
                         "measured": {"onnxruntime": _timing(50.0, "onnxruntime")}}]}
    tables = comparison_tables(paper_tables, bench)
    t1 = {r["model"]: r for r in tables["table1"]}
    assert t1["ShuffleNet_V2"]["measured"]["caffe"] == 12.0 and t1["ShuffleNet_V2"]["paper"]["top1"] == 69.4
    assert t1["ShuffleNet_V2"]["errors"] == {"opencv": "no layer"}
    assert t1["ResNet-50"]["measured"] == {} and len(t1) == 10
    t4 = {(r["model"], r["size"]): r for r in tables["table4"]}
    assert t4[("DF1-Seg", "1280x720")]["measured"]["onnxruntime"] == 50.0
    assert t4[("DF1-Seg", "1280x720")]["hxw"] == "720x1280"
    assert t4[("DF1-Seg", "1280x720")]["paper"] == {"ms_titanx": 8.24, "fps_titanx": 121.4}
    assert plot_fig5(tables["table1"])[:4] == b"\x89PNG"


def test_a_paper_json_of_bare_numbers_is_named_as_the_old_schema(tmp_path):
    old = tmp_path / "paper.json"
    old.write_text(json.dumps({"table1": [{"model": "DF1", "measured": {"caffe": 12.0}}], "table4": []}))
    with pytest.raises(ComparisonFormatError, match=r"paper.json: table1\[0\].measured.caffe: a bare number"):
        load_paper_bench(old)
