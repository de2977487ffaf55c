"""tools.bench (tools.engines.head_to_head, tools.report.head_to_head): paper figures, the OpenCV hand-over rewrite, and one real end-to-end run.
Needs `make caffe` (a missing Caffe fails, never skips) and the reference material."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prototxt_gen import caffe_pb2
from prototxt_gen.netprep import phase_view as inference_view
from tools.engines.head_to_head import ICNET_HW
from tools.models.registry import run_size
from tools.report.paper import read_paper_tables, titanx_figures
from tools.engines.nets import explicit_interp_sizes, prepare_net
from prototxt_gen.netio import read_net
from prototxt_gen.netprep import upgrade_net_input
from tools.export.pycaffe_net import load_net

REPO = Path(__file__).resolve().parent.parent


def test_paper_figures(reference_dir):
    figures = titanx_figures(read_paper_tables())
    assert figures[("DF1-Seg", "1024x2048")] == (None, 30.7)
    assert figures[("ICNet", "1025x2049")] == (None, 30.3)
    assert figures[("DF1-Seg", "360x640")] == (3.65, 274.0)
    assert figures[("DF1-Seg-d8", "1080x1920")] == (13.18, 75.9)


def test_icnet_interp_made_explicit_for_opencv(caffe, reference_dir):
    param = upgrade_net_input(read_net(reference_dir / "icnet" / "icnet_cityscapes.prototxt"))
    net = load_net(caffe, param)
    shapes = {name: blob.data.shape for name, blob in net.blobs.items()}
    rewritten = explicit_interp_sizes(prepare_net(param))
    interps = {l.name: l for l in rewritten.layer if l.type == "Interp"}
    assert interps and all(not l.interp_param.HasField("shrink_factor") and
                           not l.interp_param.HasField("zoom_factor") for l in interps.values())
    assert (interps["data_sub2"].interp_param.height, interps["data_sub2"].interp_param.width) == (513, 1025)
    assert (interps["conv6_interp"].interp_param.height, interps["conv6_interp"].interp_param.width) == ICNET_HW
    # Caffe computes the same shapes from the rewritten net.
    again = load_net(caffe, rewritten)
    assert {n: b.data.shape for n, b in again.blobs.items()} == shapes


def test_inference_view_drops_train_layers():
    net = caffe_pb2.NetParameter()
    for phase, name in ((caffe_pb2.TRAIN, "a"), (caffe_pb2.TEST, "b")):
        net.layer.add(name=name, type="ReLU").include.add(phase=phase)
    net.layer.add(name="c", type="ReLU")
    view = inference_view(net)
    assert [l.name for l in view.layer] == ["b", "c"] and not view.layer[0].include


def test_bench_end_to_end_on_icnet(caffe, reference_dir, tmp_path):
    """Real `caffe time` and OpenCV on ICNet (2 rounds of 1 pass each); OpenCV's output is
    checked against pycaffe's inside the run (a mismatch would be reported as an error)."""
    result = subprocess.run([sys.executable, "-m", "tools.bench", "--models", "icnet", "--iterations", "2",
                             "--rounds", "2", "--no-table4", "--opencv-iterations", "2",
                             "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    runs = {r["engine"]: r for r in data["runs"]}
    assert set(runs) == {"caffe", "opencv", "torch"}
    for run in runs.values():
        assert run["error"] is None, run["error"]
        assert run["fps"] > 0 and run["input_hw"] == list(ICNET_HW)
        lo, hi = run["ci95_ms"]
        assert run["min_ms"] <= run["median_ms"] and lo <= run["median_ms"] <= hi
        assert run["samples"] >= 2 and run["protocol"]["rounds"] == 2 and run["machine"]["cpu"]
    assert runs["caffe"]["paper_fps"] == 30.3 and runs["caffe"]["layers"]
    assert data["df1seg_over_icnet"]["paper"] == pytest.approx(30.7 / 30.3)
    assert data["df1seg_over_icnet"]["caffe"] is None   # no DF1-Seg in this run
    assert data["threads"] == 1 and data["protocol"]["caffe"]["rounds"] == 2
    assert data["machine"]["cpu"] and data["engines"]["caffe"]["version"]
    entry = data["models"]["ICNet"]["resolution"]["1025x2049"]
    assert entry["median_ms"] == runs["caffe"]["median_ms"] and entry["engine"] == "caffe"
    assert entry["samples"] == 2 and entry["machine"]["cpu"] and entry["protocol"]["rounds"] == 2
    assert "| ICNet | caffe | 1025x2049 | 2 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "fps.png").stat().st_size > 0


def test_table4_sizes_padded_to_stride_32():
    assert run_size("df1seg", (360, 640)) == (384, 640)
    assert run_size("df1seg", (720, 1280)) == (736, 1280)
    assert run_size("df1seg", (1080, 1920)) == (1088, 1920)
    assert run_size("df1seg", (1024, 2048)) == (1024, 2048)
