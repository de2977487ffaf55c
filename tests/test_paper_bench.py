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
    # every engine without a figure says why: the bench's reason, else that it did not run there
    assert t1["ShuffleNet_V2"]["errors"]["opencv"] == "no layer"
    assert t1["ShuffleNet_V2"]["errors"]["onnxruntime"].startswith("not measured on this engine")
    assert "caffe" not in t1["ShuffleNet_V2"]["errors"]
    assert t1["ResNet-50"]["measured"] == {} and len(t1) == 10
    assert set(t1["ResNet-50"]["errors"]) == {"caffe", "opencv", "onnxruntime"}
    assert t1["ResNet-50"]["errors"]["caffe"].startswith("not measured: bench/paper.json has no row")
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


# Tables 3 and 5 and Fig. 1 (issue 25): rows from a saved bench/paper.json, never from timing

from tools.paper_bench import main as paper_bench_main
from tools.report.fig1 import Fig1PointsError, fig1_points, plot_fig1_measured
from tools.report.paper_plan import (Ceiling, Cost, _peak_bytes, is_built, model_key, plan,
                                     registry_name)

ENGINES = ("caffe", "opencv", "onnxruntime")


def _every_engine_has_a_figure_or_a_reason(tables: dict) -> None:
    for table, rows in tables.items():
        for r in rows:
            for e in ENGINES:
                has_figure = r["measured"].get(e) is not None
                assert has_figure != (e in r["errors"]), (table, r["model"], e)
                assert has_figure or r["errors"][e].strip(), (table, r["model"], e)


def test_table3_table5_and_fig1_rows(paper_tables):
    bench = {"table3": [{"model": "BiSeNet-1 (Xception39)", "name": "bisenet1", "input_hw": [768, 1536],
                         "measured": {"caffe": _timing(30.0, "caffe"), "opencv": None},
                         "errors": {"opencv": "OpenCV cannot load net"}}],
             "table5": [{"model": "ESPNet", "name": "espnet", "paper_size": "640x360", "input_hw": [360, 640],
                         "measured": {"onnxruntime": _timing(40.0, "onnxruntime")}}],
             "fig1": [{"model": "PSPNet-101", "name": "pspnet101", "input_hw": [1024, 2048],
                       "measured": {"onnxruntime": _timing(40000.0, "onnxruntime")}}]}
    tables = comparison_tables(paper_tables, bench, fig1_points())
    t3 = {r["model"]: r for r in tables["table3"]}
    assert len(t3) == len(paper_tables["table3_1080ti"])
    # the paper times BiSeNet at 1536x768 (WxH, its note): measured at 768x1536
    assert t3["BiSeNet1"]["hxw"] == "768x1536" and t3["BiSeNet1"]["measured"]["caffe"] == 30.0
    assert t3["BiSeNet1"]["paper"]["fps_1080ti"] == 105.8 and t3["BiSeNet1"]["errors"]["opencv"] == "OpenCV cannot load net"
    assert t3["ICNet"]["hxw"] == "1024x2048" and t3["ICNet"]["paper"]["fps_titanx_caffe"] == 30.3
    assert t3["ICNet"]["measured"] == {} and "no row" in t3["ICNet"]["errors"]["caffe"]
    assert t3["DF1-Seg"]["paper"]["miou_test"] == 73.0
    t5 = {(r["model"], r["size"]): r for r in tables["table5"]}
    assert {size for _, size in t5} == {"480x320", "640x360", "1280x720"}
    assert t5[("ESPNet", "640x360")]["measured"]["onnxruntime"] == 40.0
    assert t5[("ESPNet", "640x360")]["paper"] == {"ms_tx2": None, "fps_tx2": 20}
    assert t5[("ESPNet", "640x360")]["hxw"] == "360x640"
    assert t5[("DF1-Seg", "480x320")]["paper"] == {"ms_tx2": 9.45, "fps_tx2": 105.8}
    t4 = {(r["model"], r["size"]) for r in tables["table4"]}
    assert {("BiSeNet-1", s) for s in ("640x360", "1280x720", "1920x1080")} <= t4
    f1 = {r["model"]: r for r in tables["fig1"]}
    assert f1["PSPNet"]["measured"]["onnxruntime"] == 40000.0 and f1["PSPNet"]["hxw"] == "1024x2048"
    assert f1["DeepLab-v2"]["paper"]["fps"] is None and f1["DeepLab-v2"]["paper"]["fps_source"]
    _every_engine_has_a_figure_or_a_reason(tables)
    assert plot_fig1_measured(tables["fig1"], list(ENGINES))[:4] == b"\x89PNG"


def test_a_model_not_built_yet_says_so():
    point = {"model": "NoSuchNet", "name": "nosuchnet", "hw": (64, 128), "miou_test": 50.0, "fps": 1.0}
    assert not is_built("nosuchnet")
    for bench in (None, {"fig1": []}):
        row, = comparison_tables(None, bench, [point])["fig1"]
        assert row["measured"] == {} and set(row["errors"]) == set(ENGINES)
        assert all(why.startswith("not built: no model 'nosuchnet'") for why in row["errors"].values())


def test_paper_names_are_looked_up_in_the_registry():
    assert registry_name("BiSeNet-1") == registry_name("BiSeNet1") == "bisenet1"
    assert registry_name("PSPNet") == "pspnet101" and registry_name("DeepLab-v2") == "deeplabv2"
    assert registry_name("DF1-Seg-d8") == "df1seg_d8" and registry_name("ShuffleNet_V2") == "shufflenet_v2"
    assert registry_name("ICNet") == "icnet" and model_key("BiSeNet-2 (ResNet-18)") == "bisenet2resnet18"


def test_fig1_points_each_have_their_sources(paper_tables, tmp_path):
    points = fig1_points()
    table3 = {model_key(r["model"]): r for r in paper_tables["table3_1080ti"]}
    for p in points:
        assert p["miou_source"].strip() and p["fps_source"].strip(), p["model"]
        assert 0 < p["miou_test"] < 100 and (p["fps"] is None or p["fps"] > 0), p["model"]
        assert p["device"] or p["fps"] is None, p["model"]
        if p["model"].startswith("DF"):   # DF-Seg's are the paper's Table 3, as transcribed
            assert (p["miou_test"], p["fps"], p["hw"]) == (table3[model_key(p["model"])]["miou_test"],
                                                           table3[model_key(p["model"])]["fps"], (1024, 2048))
    assert {p["name"] for p in points} >= {"pspnet101", "deeplabv2", "enet", "segnet", "icnet", "bisenet1",
                                           "bisenet2", "espnet", "df1seg", "df2seg1", "df2seg2"}
    bad = tmp_path / "points.yaml"
    bad.write_text("points:\n  - {model: X, name: x, miou_test: 50, miou_source: ' ', fps: 2, hxw: 8x8, fps_source: s}\n")
    with pytest.raises(Fig1PointsError, match="miou_source is empty"):
        fig1_points(bad)
    bad.write_text("points:\n  - {model: X, name: x, miou_test: 50, fps: 2, hxw: 8x8, fps_source: s}\n")
    with pytest.raises(Fig1PointsError, match="lacks miou_source"):
        fig1_points(bad)


def test_plan_has_every_table_at_the_papers_sizes():
    t3 = {e.name: e.hw for e in plan({"table3"})}
    assert t3["bisenet1"] == t3["bisenet2"] == (768, 1536) and t3["segnet"] == t3["icnet"] == (1024, 2048)
    t4 = plan({"table4"})
    assert {e.name for e in t4} >= {"bisenet1", "bisenet2", "segnet", "enet", "df1seg"}
    assert {e.hw for e in t4} == {(360, 640), (720, 1280), (1080, 1920)}
    t5 = plan({"table5"}, {"espnet"})
    assert sorted((e.hw, e.paper_size) for e in t5) == [((320, 480), "480x320"), ((360, 640), "640x360"),
                                                        ((720, 1280), "1280x720")]
    f1 = plan({"fig1"}, None, fig1_points())
    assert ("espnet", (512, 1024)) in {(e.name, e.hw) for e in f1}


def test_ceiling_rule_names_its_figures():
    ceiling = Ceiling(seconds=50.0)
    big = Cost(macs=1_200_000_000_000, peak_bytes=10**9)
    why = ceiling.refusal("onnxruntime", big, 3, (1024, 2048), memory_checked_by_engine=False)
    # 1200 GMAC at the assumed 30 GMAC/s: 40 s a pass, 3 passes = 120 s > 50 s
    assert "1200 GMAC a pass at 1024x2048" in why and "40 s a pass" in why and "x 3 passes = 120 s" in why
    assert "the assumed rate" in why and "> the 50 s ceiling" in why
    # the rate learned is MAC-weighted: 100 GMAC in 0.5 s and 300 GMAC in 0.5 s -> 400 GMAC/s
    ceiling.learn("onnxruntime", 100_000_000_000, 500.0)
    ceiling.learn("onnxruntime", 300_000_000_000, 500.0)
    assert ceiling.rate("onnxruntime") == 400.0 and ceiling.rate("opencv") == 30.0   # rates are per engine
    assert ceiling.refusal("onnxruntime", big, 3, (1024, 2048), False) is None      # 3 s x 3 = 9 s
    assert "its rate in this run" in ceiling.refusal("onnxruntime", big, 20, (1024, 2048), False)
    huge = Cost(macs=1000, peak_bytes=2**60)
    assert "needs about" in ceiling.refusal("opencv", huge, 1, (8, 8), False)
    assert ceiling.refusal("caffe-time", huge, 1, (8, 8), memory_checked_by_engine=True) is None


def test_peak_memory_counts_blobs_alive_at_once():
    from prototxt_gen.analysis import LayerInfo, NetAnalysis, TopInfo
    def layer(name, bottoms, tops, params=0):
        return LayerInfo(name, "X", bottoms, [TopInfo(t, (1, c, 10, 10)) for t, c in tops], params, 0, 0)
    split = layer("data_split", ["data"], [("data_0", 1), ("data_1", 1)])
    split.inserted = True                                                     # shares data's memory
    net = NetAnalysis("n", "TEST", [layer("data", [], [("data", 1)]), split,
                                   layer("conv1", ["data_0"], [("c1", 2)], params=10),
                                   layer("relu", ["c1"], [("c1", 2)]),          # in place: no new memory
                                   layer("conv2", ["c1"], [("c2", 1)], params=5),
                                   layer("sum", ["data_1", "c2"], [("out", 1)])])
    # at conv2: data (100 floats, read again by sum) + c1 (200) + c2 (100) alive; weights 15 floats
    assert _peak_bytes(net) == 4 * (100 + 200 + 100) + 4 * 15


def test_paper_bench_rows_for_nets_not_built_and_over_the_ceiling(tmp_path, monkeypatch):
    import tools.paper_bench as pb
    fake = {"model": "NoSuchNet", "name": "nosuchnet", "hw": (64, 128), "miou_test": 50.0, "fps": 1.0}
    monkeypatch.setattr(pb, "fig1_points", lambda: [fake])
    out = tmp_path / "paper.json"
    assert paper_bench_main(["--models", "nosuchnet", "--no-table1", "--out", str(out)]) == 0
    row, = json.loads(out.read_text())["fig1"]
    assert row["name"] == "nosuchnet" and row["input_hw"] == [64, 128]
    assert set(row["errors"]) == set(ENGINES) and all(v is None for v in row["measured"].values())
    assert all(why.startswith("not built") for why in row["errors"].values())
    # a ceiling no net fits under: every row says so, with the net's figures, and nothing runs
    assert paper_bench_main(["--models", "df1seg", "--no-table1", "--no-table3", "--no-table4", "--no-fig1",
                             "--max-net-seconds", "1e-6", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["table5"]
    assert sorted(r["paper_size"] for r in rows) == ["1280x720", "480x320", "640x360"]
    for r in rows:
        assert all(v is None for v in r["measured"].values())
        assert all("GMAC a pass at" in why and "ceiling" in why for why in r["errors"].values()), r["errors"]
