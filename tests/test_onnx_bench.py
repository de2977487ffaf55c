"""tools.ort_bench (runs here) and tools.tensorrt_bench (its profile log format here,
tools.engines.tensorrt_profile; engines only where the tensorrt wheel and an NVIDIA GPU are
present)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.engines.tensorrt import LayerTimes
from tools.engines.tensorrt_profile import format_profile
from tools.report.measured import load_measured
from tools.report.timings import TIMING_KEYS, models_view

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_ort_bench_writes_schema_table_and_plot(tmp_path):
    out = tmp_path / "bench" / "onnxruntime.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.ort_bench", "--models", "dflite_seg_d8,icnet",
         "--sizes", "180x320", "--warmup", "1", "--repeats", "2", "--threads", "1",
         "--out", str(out)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["engine"] == "onnxruntime" and report["batch"] == 1
    assert report["threads"] == {"intra_op": 1, "inter_op": 1}
    assert report["warmup"] == 1 and report["repeats"] == 2
    assert "random" in report["weights"]
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"dflite_seg_d8", "icnet"}
    assert rows["dflite_seg_d8"]["model"] == "DFlite-Seg-d8"
    assert rows["icnet"]["model"] == "ICNet"
    assert rows["dflite_seg_d8"]["input_hw"] == [180, 320]
    assert rows["dflite_seg_d8"]["run_hw"] == [192, 320]  # multiple of 32
    assert rows["icnet"]["run_hw"] == [193, 321]  # 32k + 1
    for r in rows.values():
        assert len(r["times_ms"]) == 2 and all(t > 0 for t in r["times_ms"])
        assert r["samples"] == 2 and r["engine"] == "onnxruntime" and r["protocol"]["repeats"] == 2
        assert r["machine"]["cpu"] and r["min_ms"] <= r["median_ms"]
        assert r["median_ms"] == pytest.approx(float(np.median(r["times_ms"])), abs=1e-3)
        assert r["fps"] == pytest.approx(1000 / r["median_ms"], rel=1e-3)
    assert (tmp_path / "bench" / "onnxruntime.png").stat().st_size > 1000
    # the "models" view is what `make tables` reads, keyed by the asked size, height first
    measured = load_measured(out)
    assert len(measured) == 2
    assert sorted(ms for ms in measured.values()) == sorted(r["median_ms"] for r in rows.values())
    entry = report["models"]["ICNet"]["resolution"]["180x320"]
    assert entry["run_hw"] == "193x321" and set(TIMING_KEYS) <= set(entry)
    assert re.search(r"\| ICNet \| [\d.]+ \([\d.]+\) @193x321 \|", result.stdout)
    assert "random" in result.stdout


def test_tensorrt_summary_prefers_fp16_and_keeps_both():
    rows = [{"model": "DF1-Seg", "input_hw": [1024, 2048], "run_hw": [1024, 2048],
             "median_ms": ms, "min_ms": ms, "ci95_ms": [ms, ms], "samples": 3, "protocol": {},
             "engine": f"tensorrt {p}", "machine": {}, "fps": 1000 / ms, "precision": p}
            for p, ms in (("fp32", 9.0), ("fp16", 5.0))]
    for order in (rows, rows[::-1]):
        entry = models_view(order, prefer="fp16")["DF1-Seg"]["resolution"]["1024x2048"]
        assert entry["median_ms"] == 5.0 and entry["precision"] == "fp16"
        assert entry["engine"] == "tensorrt fp16" and entry["fps"] == 200.0
        assert entry["fp32_ms"] == 9.0 and entry["fp16_ms"] == 5.0


def test_ort_bench_rejects_unknown_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tools.ort_bench", "--models", "df9seg", "--out",
         str(tmp_path / "x.json")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2 and "df9seg" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.json").exists()


def release_profile_lines(reference_dir, kind="score"):
    path = reference_dir / "release" / "log" / f"log_df1seg_profile_{kind}_1024x2048_1080ti.txt"
    lines = path.read_text().splitlines()
    first = next(i for i, l in enumerate(lines) if l.startswith("Binding")) 
    last = next(i for i, l in enumerate(lines) if l.startswith("Time over all layers"))
    layer_lines = [l for l in lines[first:last] if not l.startswith("Binding")]
    return lines, layer_lines


def test_profile_format_reproduces_the_release_log(reference_dir):
    lines, layer_lines = release_profile_lines(reference_dir)
    layers = [(l[:40].rstrip(), float(l[40:].strip().removesuffix("ms"))) for l in layer_lines]
    # names longer than 40 columns were cut by the sample; give ours the uncut name
    layers = [(n + "lu" if n.endswith(".re") else n, ms) for n, ms in layers]
    text = format_profile("prototxt/df1seg_mergebn_caffetime.prototxt", ["data"],
                          ["Decoder_score"], layers)
    ours = text.splitlines()
    assert ours[0] == lines[0]
    assert [l for l in ours if l.startswith("Binding")] == [l for l in lines if
                                                            l.startswith("Binding")]
    assert [l for l in ours if l.endswith("ms") and not l.startswith("Time")] == layer_lines
    total = float(ours[-2].removeprefix("Time over all layers: ").removesuffix("ms"))
    assert total == pytest.approx(7.304, abs=0.01)  # the log's own total of rounded times
    assert ours[-1] == "Done."


def test_profile_parses_with_the_log_parser():
    from tools.report.log_parsers import parse_tensorrt_profile
    times = LayerTimes()
    for _ in range(3):  # three profiled iterations, averaged per layer
        for name, ms in [("conv1 + conv1/relu", 0.3), ("res2.1.skipConv + res2.1.sum + "
                                                         "res2.1.relu", 0.12),
                         ("Decoder_score", 0.05)]:
            times.add(name, ms)
    text = format_profile("df1seg (1024x2048, fp16)", ["data"], ["Decoder_score"], times.means())
    parsed = parse_tensorrt_profile(text)
    assert parsed["total_ms"] == pytest.approx(0.47, abs=1e-3)
    assert [l["name"] for l in parsed["layers"]] == [
        "conv1 + conv1/relu", "res2.1.skipConv + res2.1.sum + res2.1.re", "Decoder_score"]
    assert parsed["inputs"] == ["data"] and parsed["outputs"] == ["Decoder_score"]


def tensorrt_or_skip():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed: it needs an NVIDIA "
                              "GPU and `pip install -e '.[tensorrt]'` from NVIDIA's index (PyPI's "
                              "tensorrt-cu12-libs is a stub that downloads from there, which the "
                              "project's machines cannot reach); see docs/gpu.md")
    from tools.engines.tensorrt import Cuda, TensorRTUnavailable
    try:
        return trt, Cuda()
    except TensorRTUnavailable as err:
        pytest.skip(f"no usable GPU/CUDA bindings: {err}")


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_tensorrt_engine_matches_onnxruntime(precision, tolerance):
    trt, cuda = tensorrt_or_skip()
    import onnxruntime as ort

    from prototxt_gen.generate import net_for
    from tools.engines.tensorrt import build_engine, run_engine
    from tools.export.onnx_convert import convert
    model = convert(net_for("dflite_seg", "caffetime_mergebn", input_size=(128, 256)), None)
    x = np.random.default_rng(0).normal(size=(1, 3, 128, 256)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"data": x})))
    _runtime, engine = build_engine(model, precision)
    result = run_engine(engine, {"data": x}, warmup=2, iterations=5, cuda=cuda)
    for name, value in want.items():
        got = result.output_arrays[name].astype(np.float32)
        assert np.abs(got - value).max() <= tolerance * np.abs(value).max(), name
    assert result.median_ms > 0 and result.median_with_copies_ms >= result.min_ms
    assert result.layer_ms and all(ms >= 0 for _, ms in result.layer_ms)
    text = format_profile("dflite_seg", result.inputs, result.outputs, result.layer_ms)
    assert text.splitlines()[-2].startswith("Time over all layers: ")


def test_fp16_model_for_strongly_typed_tensorrt_runs_in_onnxruntime():
    import onnx
    import onnxruntime as ort

    from prototxt_gen.generate import net_for
    from tools.engines.tensorrt import fp16_model
    from tools.export.onnx_convert import convert
    model = convert(net_for("dflite_seg", "caffetime_mergebn", input_size=(64, 128)), None)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 128)).astype(np.float32)
    (want,) = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"data": x})
    (got,) = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]
                                  ).run(None, {"data": x.astype(np.float16)})
    assert got.dtype == np.float16
    assert np.abs(got.astype(np.float32) - want).max() <= 2e-2 * np.abs(want).max()
