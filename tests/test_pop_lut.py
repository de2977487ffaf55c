"""Latency look-up table: keys, file format, incremental builds on a real engine (OpenCV's
DNN module reading the generator's prototxts; Caffe when it is built), platform refusal,
whole-network validation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from prototxt_gen.encoding import BasicBlock, BottleneckBlock
from pop.backends import BackendError, make_backend
from pop.lut import LatencyTable, LutError, LutKey, block_key, build, required_keys, table_from_model
from pop.space import Space, SpaceConfig

REPO = Path(__file__).resolve().parent.parent
TINY = {"stages": [{"widths": [64, 128], "max_depth": 2},
                   {"widths": [128, 256], "max_depth": 2},
                   {"widths": [256], "max_depth": 2}],
        "input_size": [32, 32], "num_classes": 10, "latency_ms": [0, 1000]}


def test_key_text_round_trip_and_paper_example():
    # the paper's example Latency(32,112,112,64,56,56) is the stem's conv2 shape; ours keys blocks
    k = block_key(BasicBlock(128), 64, (56, 56), 2, True)
    assert str(k) == "basic:64x56x56->128x28x28:proj"
    b = block_key(BottleneckBlock(128, 512), 256, (28, 28), 1, True)
    assert str(b) == "bottleneck/128:256x28x28->512x28x28:proj"
    for key in (k, b, LutKey("stem", 3, 224, 224, 64, 56, 56), LutKey("head", 512, 7, 7, 1000, 1, 1)):
        assert LutKey.parse(str(key)) == key
    with pytest.raises(LutError, match="malformed"):
        LutKey.parse("conv:1x2")


@pytest.fixture(scope="module")
def opencv():
    return make_backend("opencv", threads=1, iterations=3)


def test_incremental_build_profiles_only_missing_keys(tmp_path, opencv):
    cfg = SpaceConfig.from_dict(TINY)
    keys = required_keys(cfg)
    table = LatencyTable(opencv.platform())
    path = tmp_path / "lut.json"
    assert build(table, keys[:5], opencv, save_to=path, progress=False) == 5
    on_disk = LatencyTable.load(path)
    assert len(on_disk.entries) == 5 and on_disk.platform["backend"] == "opencv"
    assert build(on_disk, keys, opencv, save_to=path, progress=False) == len(keys) - 5
    assert build(on_disk, keys, opencv, save_to=path, progress=False) == 0
    final = LatencyTable.load(path)
    assert all(v > 0 for v in final.entries.values())
    # a real measurement: a wider block costs more than a narrow one at the same place
    wide = final.entries[block_key(BasicBlock(256), 256, (2, 2), 1, False)]
    narrow = final.entries[block_key(BasicBlock(128), 128, (2, 2), 1, False)]
    assert wide > narrow
    space = Space.enumerate(cfg, final)
    assert space.size > 0


def test_file_is_versioned_with_platform(tmp_path, opencv):
    t = LatencyTable(opencv.platform())
    t.save(tmp_path / "l.json")
    data = json.loads((tmp_path / "l.json").read_text())
    assert data["format"] == "dfseg-pop-lut" and data["version"] == 1
    assert {"cpu", "threads", "engine_version", "backend"} <= set(data["platform"])
    data["version"] = 99
    (tmp_path / "l.json").write_text(json.dumps(data))
    with pytest.raises(LutError, match="version 99"):
        LatencyTable.load(tmp_path / "l.json")


def test_cli_build_validate_and_foreign_platform(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY))
    common = ["--space", tmp_path / "s.yaml", "--lut", tmp_path / "lut.json", "--backend", "opencv",
              "--iterations", "3"]
    run = lambda *a: subprocess.run([sys.executable, "-m", "pop", *map(str, a)], cwd=REPO,
                                    capture_output=True, text=True)
    out = run("lut", "build", *common)
    assert out.returncode == 0, out.stderr
    again = run("lut", "build", *common)
    assert "0 to profile" in again.stdout
    out = run("lut", "validate", *common, "-n", 4, "--out", tmp_path / "val")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "val" / "lut_validation.json").read_text())
    assert summary["n"] == 4 and len(summary["records"]) == 4
    assert all(r["measured_ms"] > 0 for r in summary["records"])
    # three runs and one beside a busy neighbour, each reported; the worst of them named
    assert len(summary["repeats"]) == 3 and summary["busy"]["n"] == 4
    assert summary["worst"]["within_10pct"] == min(r["within_10pct"] for r in summary["repeats"] + [summary["busy"]])
    assert "busy neighbour:" in out.stdout and "worst run:" in out.stdout
    assert (tmp_path / "val" / "lut_validation.png").read_bytes()[:4] == b"\x89PNG"
    # the same file claimed by another CPU is refused
    data = json.loads((tmp_path / "lut.json").read_text())
    data["platform"]["cpu"] = "Some Other CPU @ 1 GHz"
    (tmp_path / "lut.json").write_text(json.dumps(data))
    for cmd in (["lut", "build", *common], ["space", "--space", tmp_path / "s.yaml", "--lut", tmp_path / "lut.json"]):
        out = run(*cmd)
        assert out.returncode == 2 and "another platform" in out.stderr and "Some Other CPU" in out.stderr


def test_missing_engines_fail_clearly():
    with pytest.raises(BackendError, match="unknown backend"):
        make_backend("abacus")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="tensorrt"):
            make_backend("tensorrt")


def test_caffe_backend_profiles_a_block(caffe):
    backend = make_backend("caffe", iterations=2)   # our Caffe is built for the tests: no skip
    ms = backend.profile_key(block_key(BasicBlock(64), 64, (16, 16), 1, False))
    assert 0 < ms < 1000


def test_caffe_time_binary_profiles_a_block(caffe_bin):
    backend = make_backend("caffe-time", iterations=3)
    small = backend.profile_key(block_key(BasicBlock(64), 64, (16, 16), 1, False))
    large = backend.profile_key(block_key(BasicBlock(256), 256, (16, 16), 1, False))
    assert 0 < small < large


def test_decoder_latencies_measured_then_searched(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "pop", *map(str, a)], cwd=REPO,
                                    capture_output=True, text=True)
    out_file = tmp_path / "dec.yaml"
    args = ["lut", "decoder", "--backbone", "[(64),(128),(256)]", "--wc-choices", "K,32", "--num-classes", 4,
            "--input-size", "32x64", "--backend", "opencv", "--iterations", 2, "--out", out_file]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out_file.read_text())["decoder"]
    assert len(doc["latency_ms"]) == 8 and doc["platform"]["backend"] == "opencv"
    first = dict(doc["latency_ms"])
    assert run(*args).returncode == 0  # incremental: nothing re-measured
    assert yaml.safe_load(out_file.read_text())["decoder"]["latency_ms"] == first
    out = run("search", "--decoder", out_file, "--storage", f"sqlite:///{tmp_path}/d.db", "--study", "d",
              "-K", 3, "--quiet", "--workdir", tmp_path / "runs")
    assert out.returncode == 0, out.stderr
    assert "[(64),(128),(256)]:[" in out.stdout
    # a different backbone in the same file is refused
    bad = run(*[a if a != "[(64),(128),(256)]" else "[(64),(128),(512)]" for a in args])
    assert bad.returncode == 2 and "measured for backbone" in bad.stderr


def test_onnxruntime_backend_profiles_a_block():
    # onnx and onnxruntime are declared dependencies and the exporter is ours: no skip
    backend = make_backend("onnxruntime", iterations=3)
    backend.time_net(__import__("pop.backends", fromlist=["key_net"]).key_net(
        LutKey("head", 64, 2, 2, 10, 1, 1)))
    small = backend.profile_key(block_key(BasicBlock(64), 64, (16, 16), 1, False))
    large = backend.profile_key(block_key(BasicBlock(256), 256, (16, 16), 1, False))
    assert 0 < small < large


def test_calibration_is_measured_stored_applied_and_dropped_on_rebuild(tmp_path, opencv):
    from pop.validate import calibrate, calibrated_estimates
    cfg = SpaceConfig.from_dict(TINY)
    table = LatencyTable(opencv.platform())
    keys = required_keys(cfg)
    build(table, keys[:-1], opencv, progress=False)
    build(table, keys, opencv, progress=False)
    raw = Space.enumerate(cfg, table)
    cal = calibrate(raw, table, opencv, n=3, progress=False)
    assert cal["nets"] == 3 and len(cal["ratios"]) == 3 and cal["scale"] > 0
    assert table.scale == cal["scale"] and table.part_overhead == cal["part_overhead_ms"]
    # the calibration nets span Ŝ: its fastest and its slowest architecture among them
    assert {0, raw.size - 1} <= set(cal["rows"])
    scaled = Space.enumerate(cfg, table)
    every = list(range(raw.size))
    assert np.allclose(np.sort(scaled.latency), np.sort(calibrated_estimates(raw, table, every, cal)))
    table.save(tmp_path / "lut.json")
    assert LatencyTable.load(tmp_path / "lut.json").scale == cal["scale"]
    # new entries were measured in another state: the old factor no longer holds
    table.entries.pop(keys[0])
    build(table, keys, opencv, progress=False)
    assert table.scale == 1.0 and "calibration" not in table.meta


def test_validation_calibrates_on_other_nets_in_the_same_rounds(tmp_path, opencv):
    from pop.validate import calibrated_estimates, validate
    cfg = SpaceConfig.from_dict(TINY)
    table = LatencyTable(opencv.platform())
    build(table, required_keys(cfg), opencv, progress=False)
    raw = Space.enumerate(cfg, table)
    v = validate(raw, table, opencv, n=3, calibrate_on=2, out_dir=tmp_path, progress=False)
    cal = table.meta["calibration"]
    assert v["calibration_nets"] == 2 and v["calibration_scale"] == cal["scale"] > 0
    checked = {r["encoding"] for r in v["records"]}
    assert len(checked) == 3 and not checked & set(cal["encodings"])
    every = list(range(raw.size))
    by_encoding = dict(zip(raw.encodings(), calibrated_estimates(raw, table, every, cal)))
    for r in v["records"]:
        assert r["estimated_ms"] == pytest.approx(by_encoding[r["encoding"]])


def test_calibration_fit_recovers_a_known_scale_and_part_overhead():
    """Whole nets made to cost exactly 0.9 x (Σ parts - (parts - 1) x 0.01 ms): the fit finds both
    numbers from four nets of different depths, and the table's calibrated estimates are exact
    (every part here costs more than 0.01 ms: none is clamped)."""
    from pop.lut import FlopsProxy, backbone_keys
    from pop.validate import calibrated_estimates, calibration_rows, fit_calibration
    cfg = SpaceConfig.from_dict(TINY)
    table = table_from_model(cfg, FlopsProxy(ms_per_gmac=5000.0))   # parts of 1 ms and more
    table.meta["call_overhead_ms"] = 0.005
    raw = Space.enumerate(cfg, table)
    rows = calibration_rows(raw, 4)
    parts = np.array([len(backbone_keys(cfg, raw.backbone(i))) for i in range(raw.size)])
    sums = raw.latency + (parts - 1) * 0.005
    truth = 0.9 * (sums - (parts - 1) * 0.01)
    cal = fit_calibration(raw, table, rows, list(truth[rows]))
    assert cal["scale"] == pytest.approx(0.9) and cal["part_overhead_ms"] == pytest.approx(0.01)
    assert cal["fit_median_abs_error_pct"] == pytest.approx(0.0, abs=1e-9)
    every = list(range(raw.size))
    assert np.allclose(calibrated_estimates(raw, table, every, cal), truth)
    # one depth only: the per-part cost cannot be told from the scale; the scale alone is fitted
    same_depth = [i for i in every if parts[i] == parts[rows[0]]][:3]
    cal = fit_calibration(raw, table, same_depth, list(truth[same_depth]))
    assert cal["part_overhead_ms"] == 0.005


def test_busy_neighbour_runs_on_another_core_and_ends_with_the_block():
    import os
    from tools.engines import busy_neighbour
    before = os.sched_getaffinity(0)
    with busy_neighbour(limit_s=30) as pid:
        stat = open(f"/proc/{pid}/stat").read()
        assert stat.split(") ")[1].split()[0] in "RS"        # alive
        if len(before) > 1:
            assert os.sched_getaffinity(pid).isdisjoint(os.sched_getaffinity(0))
    assert os.sched_getaffinity(0) == before
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
