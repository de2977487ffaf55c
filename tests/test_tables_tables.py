"""`python -m tools.tables`: the release tables rebuilt from the released logs, the naming
rule, the measured-results hook and the Markdown / HTML outputs."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.report.log_figures import model_key
from tools.report.measured import MeasuredFormatError, load_measured

REPO = Path(__file__).resolve().parent.parent


def _tables(*args):
    return subprocess.run([sys.executable, "-m", "tools.tables", "--quiet", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True)


@pytest.fixture()
def log_dir(reference_dir, tmp_path):
    """A private copy of the released logs, free to rename and damage."""
    d = tmp_path / "logs"
    shutil.copytree(reference_dir / "release" / "log", d)
    return d


@pytest.fixture()
def empty_bench(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    return d


def _row(rows, model):
    return next(r for r in rows if r["model"] == model)


def test_json_from_release_logs(reference_dir, paper_tables, empty_bench):
    p = _tables("--logs", reference_dir / "release" / "log", "--json", "--bench", empty_bench)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) == {"segmentation", "backbones", "table1", "table3", "table4", "table5", "fig1"}
    assert len(out["table1"]) == 10 and all(r["measured"] == {} for r in out["table1"])   # no bench/paper.json
    # Tables 3 and 5 and Fig. 1: a row per paper row (and size), each engine's cell with a reason
    assert [r["model"] for r in out["table3"]] == [r["model"] for r in paper_tables["table3_1080ti"]]
    assert len(out["table5"]) == 3 * len(paper_tables["table5_tx2"])
    assert {r["model"] for r in out["table4"]} >= {"BiSeNet-1", "BiSeNet-2"}
    for table in ("table1", "table3", "table4", "table5", "fig1"):
        for r in out[table]:
            assert set(r["errors"]) == {"caffe", "opencv", "onnxruntime"}, (table, r["model"])
            assert all(why.startswith(("not measured", "not built")) for why in r["errors"].values())
    assert [r["model"] for r in out["segmentation"]] == [r["model"] for r in paper_tables["release_segmentation"]]
    assert [r["model"] for r in out["backbones"]] == [r["model"] for r in paper_tables["release_backbones"]]
    for r in out["segmentation"]:
        assert list(r) == ["model", "miou_val", "fps_1080ti_1024x2048", "fps_1080ti_1024x1024", "fps_titanx_caffe"]
    assert _row(out["segmentation"], "DF1-Seg") == {
        "model": "DF1-Seg", "miou_val": 74.1, "fps_1080ti_1024x2048": 106.1,
        "fps_1080ti_1024x1024": None, "fps_titanx_caffe": 30.7}
    assert _row(out["segmentation"], "DF1-Seg-d8") == {
        "model": "DF1-Seg-d8", "miou_val": None, "fps_1080ti_1024x2048": 136.9,
        "fps_1080ti_1024x1024": None, "fps_titanx_caffe": None}
    assert _row(out["segmentation"], "DF2-Seg1")["fps_1080ti_1024x2048"] is None
    assert _row(out["backbones"], "DF1") == {"model": "DF1", "top1": 69.78}
    assert _row(out["backbones"], "DF2A") == {"model": "DF2A", "top1": None}
    # every rebuilt figure equals the published one
    paper = {r["model"]: r for r in paper_tables["release_segmentation"]}
    for r in out["segmentation"]:
        for k, v in r.items():
            if k != "model" and v is not None:
                assert v == paper[r["model"]][k], (r["model"], k)


def test_naming_rule_and_unusable_logs(log_dir, empty_bench):
    src = log_dir / "log_df1seg_profile_scoreup8_1024x2048_1080ti.txt"
    # the same profile filed as a 1024x1024 run fills that column; a d8 model's own name works too
    shutil.copy(src, log_dir / "log_df1seg_profile_scoreup8_1024x1024_1080ti.txt")
    shutil.copy(log_dir / "log_df1seg_profile_score_1024x2048_1080ti.txt",
                log_dir / "log_dflite_seg_d8_profile_score_1024x1024_1080ti.txt")
    shutil.copy(log_dir / "log_df1_val.txt", log_dir / "log_df2a_val.txt")
    shutil.copy(log_dir / "pred_df1seg_mergebn_val.txt", log_dir / "pred_df2_seg1_val.txt")
    (log_dir / "README.txt").write_text("not a log\n")
    shutil.copy(src, log_dir / "log_nosuchnet_profile_score_1024x2048_1080ti.txt")
    text = (log_dir / "log_df1_val.txt").read_text()
    (log_dir / "log_df2_val.txt").write_text(text[:text.index("] Loss:")])        # truncated
    p = _tables("--logs", log_dir, "--json", "--bench", empty_bench)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert _row(out["segmentation"], "DF1-Seg")["fps_1080ti_1024x1024"] == 106.1
    assert _row(out["segmentation"], "DFlite-Seg-d8")["fps_1080ti_1024x1024"] == 136.9
    assert _row(out["segmentation"], "DF2-Seg1")["miou_val"] == 74.1
    assert _row(out["backbones"], "DF2A")["top1"] == 69.78
    assert _row(out["backbones"], "DF2")["top1"] is None
    notes = p.stderr
    assert "README.txt: name follows none of the log naming rules" in notes
    assert "unknown model 'nosuchnet'" in notes
    assert re.search(r"log_df2_val\.txt: .*no final .*truncated", notes)


def test_release_d8_u8_predictions_give_the_d8_models_miou(log_dir, empty_bench):
    """The release files the -d8 models' evaluations as pred_d8_u8_<model>_mergebn_val.txt
    (1/8 prediction up-sampled x8); its DFlite model is spelled df-lite_seg.  Stand-ins: the
    DF1-Seg report under those names, with DFlite's mIoU edited to tell the two apart."""
    report = (log_dir / "pred_df1seg_mergebn_val.txt").read_text()
    assert "Score Average : 0.741" in report
    shutil.copy(log_dir / "pred_df1seg_mergebn_val.txt", log_dir / "pred_d8_u8_df1seg_mergebn_val.txt")
    (log_dir / "pred_d8_u8_df-lite_seg_mergebn_val.txt").write_text(
        report.replace("Score Average : 0.741", "Score Average : 0.717", 1))
    p = _tables("--logs", log_dir, "--json", "--bench", empty_bench)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert _row(out["segmentation"], "DF1-Seg-d8")["miou_val"] == 74.1
    assert _row(out["segmentation"], "DFlite-Seg-d8")["miou_val"] == 71.7
    assert _row(out["segmentation"], "DF1-Seg")["miou_val"] == 74.1      # its own report, unchanged
    assert _row(out["segmentation"], "DFlite-Seg")["miou_val"] is None
    assert "d8_u8" not in p.stderr                                          # none skipped


def _timing(ms: float, engine: str = "caffe") -> dict:
    """A timing record (tools.report.timings) of `ms`."""
    return {"median_ms": ms, "min_ms": ms, "ci95_ms": [ms, ms], "samples": 1, "protocol": {"rounds": 1},
            "engine": engine, "machine": {"cpu": "test"}}


def test_measured_results_hook(log_dir, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    out_dir = tmp_path / "out"
    p = _tables("--logs", log_dir, "--bench", bench, "--out", out_dir)
    assert p.returncode == 0, p.stderr
    md = (out_dir / "tables.md").read_text()
    df1 = next(l for l in md.splitlines() if l.startswith("| DF1-Seg |") and "73.0" in l)   # Table 3 row
    assert df1.endswith("| — | — | — |")                           # no measurements yet
    (bench / "results.json").write_text(json.dumps({"engine": "caffe time", "models": {
        "df1seg": {"resolution": {"1024x2048": {**_timing(2000.0), "fps": 0.5}, "360x640": _timing(250.0)}},
        "ICNet": {"resolution": {"1024x2048": _timing(4000.0)}}}}))
    (bench / "onnxruntime.json").write_text(json.dumps({"models": {
        "DF1-Seg-d8": {"resolution": {"1024x2048": _timing(800.0, "onnxruntime")}}}}))
    p = _tables("--logs", log_dir, "--bench", bench, "--out", out_dir)
    assert p.returncode == 0, p.stderr
    md = (out_dir / "tables.md").read_text()
    lines = md.splitlines()
    assert next(l for l in lines if l.startswith("| DF1-Seg |") and "73.0" in l).endswith(
        "| 2000.00 / 0.5 | — | — |")
    assert next(l for l in lines if l.startswith("| ICNet |")).endswith("| 4000.00 / 0.2 | — | — |")
    assert next(l for l in lines if l.startswith("| DF1-Seg-d8 |") and "71.4" in l).endswith(
        "| — | 800.00 / 1.2 | — |")
    # Table 4 is keyed width x height: 640x360 is the measured 360x640
    t4 = md.split("## Table 4")[1].split("## Table 5")[0]
    assert "250.00 / 4.0" in next(l for l in t4.splitlines() if l.startswith("| DF1-Seg |"))
    # a malformed results file is an error naming the file and the entry
    (bench / "tensorrt.json").write_text(json.dumps({"models": {"df1seg": {"resolution": {"1024x2048": {}}}}}))
    p = _tables("--logs", log_dir, "--bench", bench, "--json")
    assert p.returncode == 2 and "tensorrt.json" in p.stderr and "1024x2048" in p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    # a file of the benches before the one timing schema: one line naming the file and the key
    (bench / "tensorrt.json").unlink()
    (bench / "results.json").write_text(json.dumps({"models": {
        "df1seg": {"resolution": {"1024x2048": {"forward_ms": 2000.0, "fps": 0.5}}}}}))
    p = _tables("--logs", log_dir, "--bench", bench, "--json")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "results.json: models.df1seg.resolution.1024x2048" in p.stderr and '"forward_ms"' in p.stderr


def test_load_measured_schema(tmp_path):
    assert load_measured(tmp_path / "absent.json") is None
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"models": {"DF1-Seg": {"resolution": {"1024x2048": _timing(250.0)}}}}))
    assert load_measured(f) == {("df1seg", "1024x2048"): 250.0}
    f.write_text(json.dumps({"models": {"df1seg_d8": {"resolution": {"360x640": {**_timing(5), "fps": 200}}}}}))
    assert load_measured(f) == {("df1segd8", "360x640"): 5.0}
    for bad, problem in (("[]", "models"), ("{", "not JSON"),
                         (json.dumps({"models": {"x": {"resolution": {"big": _timing(1)}}}}), "HxW"),
                         (json.dumps({"models": {"x": {"360x640": _timing(1)}}}), "resolution"),
                         (json.dumps({"models": {"x": {"resolution": {"1x2": {"fps": 4.0}}}}}), "lacks"),
                         (json.dumps({"models": {"x": {"resolution": {"1x2": {"ms": 5}}}}}), '"ms" is the old'),
                         (json.dumps({"models": {"x": {"resolution": {"1x2": 5}}}}), "bare number"),
                         (json.dumps({"models": {"x": {"resolution": {"1x2": _timing(0)}}}}), "positive")):
        f.write_text(bad)
        with pytest.raises(MeasuredFormatError, match="r.json") as err:
            load_measured(f)
        assert problem in str(err.value), str(err.value)
    assert model_key("DF1-Seg-d8") == model_key("df1seg_d8") == "df1segd8"


def test_markdown_html_and_plot(log_dir, empty_bench, tmp_path):
    # a profile from a device no paper column covers still shows, in the list of all timings
    shutil.copy(log_dir / "log_df1seg_profile_score_1024x2048_1080ti.txt",
                log_dir / "log_df1seg_d8_profile_score_512x1024_h200.txt")
    out_dir = tmp_path / "out"
    p = _tables("--logs", log_dir, "--bench", empty_bench, "--out", out_dir)
    assert p.returncode == 0, p.stderr
    md = (out_dir / "tables.md").read_text()
    assert "| DF1-Seg | 74.1 | 74.1 (+0.0) | 106.1 | 106.1 (+0.0) | 182.1 | — | 30.7 | 30.7 (+0.0) |" in md
    assert "| DF1 | 69.78 | 69.78 (+0.00) |" in md
    for title in ("Table 3", "Table 4", "Table 5", "All timings read from logs", "Logs read"):
        assert f"## {title}" in md
    timings = md.split("## All timings read from logs")[1].split("##")[0]
    assert "| DF1-Seg-d8 | TensorRT | h200 | 512x1024 | 7.304 | 136.9 |" in timings
    assert "| DF1-Seg | caffe time | titanx | 1024x2048 | 32.554 | 30.7 |" in timings
    html = (out_dir / "tables.html").read_text()
    png_b64 = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    png = base64.b64decode(png_b64)
    assert png.startswith(b"\x89PNG") and png == (out_dir / "fig1_miou_vs_fps.png").read_bytes()
    # Fig. 1 redrawn (published points; measured ones once bench/paper.json exists), in the page too
    images = [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]
    fig1 = (out_dir / "fig1.png").read_bytes()
    assert fig1.startswith(b"\x89PNG") and fig1 in images and fig1 != png
    for title in ("Table 3 measured here", "Table 5 measured here", "Fig. 1 measured here"):
        assert f"## {title}" in md
    assert "<td>74.1 (+0.0)</td>" in html and "src='http" not in html
    assert json.loads((out_dir / "tables.json").read_text())["backbones"][0]["top1"] == 69.78


def test_cli_errors(tmp_path, log_dir):
    p = _tables("--logs", tmp_path / "nowhere", "--json")
    assert p.returncode == 2 and "nowhere: log directory not found" in p.stderr
    p = _tables("--logs", log_dir, "--paper", tmp_path / "none.yaml", "--json")
    assert p.returncode == 2 and "none.yaml" in p.stderr and "Traceback" not in p.stderr


def test_saved_paper_bench_fills_tables_3_5_and_fig1(log_dir, tmp_path):
    """`make tables` reads what `make bench-paper` saved: no timing here."""
    bench, out_dir = tmp_path / "bench", tmp_path / "out"
    bench.mkdir()
    row = {"model": "ESPNet", "name": "espnet", "run_hw": None,
           "measured": {"caffe": _timing(500.0), "opencv": None, "onnxruntime": _timing(300.0, "onnxruntime")},
           "errors": {"opencv": "OpenCV cannot load net 'espnet': layer X"}}
    (bench / "paper.json").write_text(json.dumps({
        "table3": [{**row, "input_hw": [1024, 2048]}],
        "table5": [{**row, "input_hw": [360, 640], "paper_size": "640x360"}],
        "fig1": [{**row, "input_hw": [512, 1024]}]}))
    p = _tables("--logs", log_dir, "--bench", bench, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    t3, t5, f1 = (next(r for r in out[t] if r["model"] == "ESPNet" and r.get("size", "640x360") == "640x360")
                  for t in ("table3", "table5", "fig1"))
    for r in (t3, t5, f1):
        assert r["measured"] == {"caffe": 500.0, "opencv": None, "onnxruntime": 300.0}
        assert r["errors"] == {"opencv": "OpenCV cannot load net 'espnet': layer X"}
    assert (t3["hxw"], t5["hxw"], f1["hxw"]) == ("1024x2048", "360x640", "512x1024")
    assert t3["paper"]["fps_1080ti"] == 110 and t5["paper"]["fps_tx2"] == 20 and f1["paper"]["miou_test"] == 60.3
    p = _tables("--logs", log_dir, "--bench", bench, "--out", out_dir)
    assert p.returncode == 0, p.stderr
    md = (out_dir / "tables.md").read_text()
    t3_md = md.split("## Table 3 measured here")[1].split("##")[0]
    assert "| ESPNet | 1024x2048 | 60.3 | 110.0 | — | 500.0 | — (OpenCV cannot load net 'espnet': layer X) | 300.0 |" in t3_md
    assert (out_dir / "fig1.png").read_bytes().startswith(b"\x89PNG")
    (bench / "paper.json").write_text(json.dumps({"table3": {"ESPNet": 5}}))
    p = _tables("--logs", log_dir, "--bench", bench, "--json")
    assert p.returncode == 2 and "paper.json" in p.stderr and p.stderr.count("\n") == 1, p.stderr
