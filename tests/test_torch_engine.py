"""The torch engine (tools/engines/torch_engine.py): the generated PyTorch module runs what
pycaffe runs on the same weights and input, is described and pinned, refuses what it cannot
do in one line, and serves `make df1seg`'s torch row and the POP LUT's torch backend.
Needs `make caffe` (a missing Caffe fails, never skips)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import net_for
from tools.engines import ENGINES, EngineError, Protocol, TorchEngine, make_engine, prepare_net, time_one
from tools.engines.nets import scaled_difference

from tests.pop_cli import pop

REPO = Path(__file__).resolve().parent.parent
HAS_GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def df1seg_scores():
    """DF1-Seg as `caffe time` runs it (class scores, not their argmax), small."""
    return prepare_net(net_for("df1seg", "caffetime_mergebn", input_size=(128, 256)))


@pytest.mark.parametrize("form", ["caffetime_mergebn", "deploy_mergebn"])
def test_outputs_agree_with_pycaffe(caffe, form):
    net = prepare_net(net_for("df1seg", form, input_size=(128, 256)))
    with make_engine("torch").prepare(net) as run, make_engine("pycaffe").prepare(net) as ref:
        got, want = run.outputs(), ref.outputs()
    assert sorted(got) == sorted(want) == sorted(net.caffe_net.outputs)
    assert all(a.dtype == np.float32 for a in got.values())
    assert scaled_difference(got, want) <= 1e-4
    assert all(np.abs(a).max() > 0 for a in want.values())   # not a vacuous agreement


def test_registered_described_and_threads_pinned(df1seg_scores):
    assert ENGINES["torch"] is TorchEngine
    engine = make_engine("torch", threads=2, device="cpu", precision="fp32")
    info = engine.describe()
    assert info["engine"] == "torch" and info["clock"] == "protocol" and info["threads"] == 2
    assert info["version"] == f"torch {torch.__version__}" and info["torch"] == torch.__version__
    assert info["device"] == "cpu" and info["precision"] == "fp32"
    assert info["cudnn_benchmark"] is False and info["device_name"] and info["cpu"]
    with engine.prepare(df1seg_scores) as run:
        assert torch.get_num_threads() == 2 and run.timed is None   # the protocol's clock
    with make_engine("torch", threads=1).prepare(df1seg_scores) as run:
        assert torch.get_num_threads() == 1
        timing = time_one(run, Protocol(warmup=1, repeats=2, rounds=2))
    assert len(timing.samples_ms) == 4 and timing.min_ms > 0


def _one_line_error(match: str, **options) -> None:
    with pytest.raises(EngineError, match=match) as caught:
        make_engine("torch", **options)
    assert "\n" not in str(caught.value)


def test_bad_options_are_one_line_errors():
    _one_line_error("fp16 runs on CUDA only", precision="fp16")
    _one_line_error("precision fp32 or fp16", precision="int8")
    _one_line_error("device cpu, cuda or cuda:N", device="tpu")
    _one_line_error("threads", threads=0)


def test_a_layer_the_export_lacks_is_a_one_line_error():
    net = caffe_pb2.NetParameter(name="odd")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 8, 8])
    net.layer.add(name="abs", type="AbsVal", bottom=["data"], top=["out"])
    with pytest.raises(EngineError, match="layer 'abs': unsupported layer type 'AbsVal'") as caught:
        make_engine("torch").prepare(net)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present: CUDA is not refused here")
def test_cuda_without_a_gpu_is_refused_in_one_line():
    _one_line_error("no CUDA device", device="cuda")
    _one_line_error("no CUDA device", device="cuda:1", precision="fp16")


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_times_with_events_and_agrees_with_the_cpu(df1seg_scores, precision):
    engine = make_engine("torch", device="cuda", precision=precision)
    info = engine.describe()
    assert info["clock"] == "cuda-events" and info["cudnn_benchmark"] is True
    assert info["device_name"] and info["cuda"] and info["precision"] == precision
    with engine.prepare(df1seg_scores) as run, make_engine("torch").prepare(df1seg_scores) as cpu:
        samples = run.timed(5)
        # TF32 (fp32) and half precision: about 1e-3 of the largest score on these weights
        assert scaled_difference(run.outputs(), cpu.outputs()) <= 1e-2
    assert len(samples) == 5 and min(samples) > 0


# tools.bench times 1024x2048 (ICNet 1025x2049): run it at a small size, same code path
SMALL_BENCH = ("import sys, tools.bench as b, tools.engines.head_to_head as h; "
               "h.FULL_HW, h.ICNET_HW = (256, 512), (257, 513); sys.exit(b.main(sys.argv[1:]))")


def test_bench_writes_the_torch_row_and_ratio(caffe, reference_dir, tmp_path):
    """caffe time and torch on DF1-Seg and ICNet (2 rounds of 1 pass); torch's output is
    checked against pycaffe's inside the run (a mismatch is the run's error)."""
    result = subprocess.run([sys.executable, "-c", SMALL_BENCH, "--models", "df1seg,icnet",
                             "--iterations", "2", "--rounds", "2", "--torch-iterations", "2",
                             "--no-table4", "--no-opencv", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    runs = {(r["engine"], r["model"]): r for r in data["runs"]}
    assert set(runs) == {(e, m) for e in ("caffe", "torch") for m in ("df1seg", "icnet")}
    for run in runs.values():
        assert run["error"] is None, run["error"]
        assert run["fps"] > 0 and run["min_ms"] <= run["median_ms"]
    head = data["df1seg_over_icnet"]
    expected = runs["torch", "df1seg"]["fps"] / runs["torch", "icnet"]["fps"]
    assert head["torch"] > 0 and len(head["torch_ci95"]) == 2 and head["caffe"] > 0
    assert head["torch"] == pytest.approx(expected, rel=0.5)   # per-round ratios vs medians
    assert data["engines"]["torch"]["device"] == "cpu" and data["protocol"]["torch"]["rounds"] == 2
    assert "| DF1-Seg | torch | 256x512 | 2 |" in result.stdout
    assert f"torch {head['torch']:.3f} [" in result.stdout


def test_pop_lut_build_on_torch(tmp_path):
    space = {"stages": [{"widths": [64, 128], "max_depth": 1}, {"widths": [128, 256], "max_depth": 1},
                        {"widths": [256], "max_depth": 1}],
             "input_size": [64, 64], "num_classes": 10, "latency_ms": [0, 1000]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(space))
    common = ["--space", tmp_path / "s.yaml", "--lut", tmp_path / "lut.json", "--backend", "torch",
              "--iterations", 3]
    out = pop("lut", "build", *common, "--calibrate", 2)
    assert "to profile on torch" in out.stdout
    lut = json.loads((tmp_path / "lut.json").read_text())
    assert lut["platform"]["backend"] == "torch" and lut["platform"]["timing"] == "cpu-time"
    assert lut["platform"]["engine_version"] == f"torch {torch.__version__}"
    entries = lut["entries"]
    assert entries and all(ms > 0 for ms in entries.values())
    assert lut["meta"]["calibration"]["nets"] == 2
    # a real measurement: the 256-wide block costs more than the 128-wide one at 4x4
    assert entries["basic:256x4x4->256x4x4"] > entries["basic:128x4x4->128x4x4"]
    out = pop("lut", "validate", *common, "-n", 2, "--out", tmp_path / "val")
    summary = json.loads((tmp_path / "val" / "lut_validation.json").read_text())
    assert summary["n"] == 2 and all(r["measured_ms"] > 0 for r in summary["records"])
