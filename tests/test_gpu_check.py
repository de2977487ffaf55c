"""tools.gpu_check (`make gpu-check`): on a machine without a GPU it says so, skips every
check and exits 0; its checks themselves run here with the CPU in the GPU's place
(`tools.gpu_runs --gpu -1`) on the CPU build, so their code has run before a GPU sees it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.runtime.caffe import CaffeNotFound, caffe_device
from tools.engines import CaffeTimeError, CaffeTimeEngine, prepare_net
from tools.gpu.host import CHECKS, find_gpu, gpu_build_problem
from tools.models.registry import timing_net

REPO = Path(__file__).resolve().parent.parent


def _run(args, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, DFSEG_CAFFE_DEVICE="cpu", **env))


def test_without_a_gpu_every_check_is_skipped_and_the_exit_is_zero(tmp_path):
    gpu, why = find_gpu()
    if gpu is not None:
        pytest.skip(f"this machine has a GPU ({gpu['name']}): `make gpu-check` runs for real")
    out = tmp_path / "gpu_check.json"
    done = _run(["-m", "tools.gpu_check", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert f"skipped all {len(CHECKS)} checks" in done.stdout
    summary = json.loads(out.read_text())
    assert summary["gpu"] is None and summary["no_gpu_reason"] == why
    assert summary["skipped"] == len(CHECKS) and summary["passed"] == summary["failed"] == 0
    assert all(c["status"] == "skip" and why in c["detail"] for c in summary["checks"].values())
    assert "pip install -e '.[tensorrt]'" in summary["checks"]["tensorrt"]["detail"]


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    done = _run(["-m", "tools.gpu_check", "--rounds", "0", "--out", str(tmp_path / "x.json")])
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "positive" in done.stderr


def test_cpu_build_is_named_no_cuda_build(caffe):
    from tools.runtime.caffe import caffe_root
    assert "no CUDA build with our kernels" in gpu_build_problem(caffe_root())
    assert "make caffe-gpu" in gpu_build_problem(REPO / "build" / "no-such-caffe")


@pytest.mark.parametrize("check", ["layers", "gradients"])
def test_layer_checks_run_on_the_cpu(caffe, tmp_path, check):
    done = _run(["-m", "tools.gpu_runs", check, "--gpu", "-1", "--result", str(tmp_path / "r.json")])
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "pass", result["detail"]
    assert {r["layer"] for r in result["rows"]} == {"Interp", "Upsample", "ShuffleChannel"}


def test_net_and_timing_checks_run_on_the_cpu(caffe, tmp_path):
    small = ["--gpu", "-1", "--hw", "256x512", "--iterations", "1", "--rounds", "2"]
    nets = _run(["-m", "tools.gpu_runs", "nets", *small, "--result", str(tmp_path / "n.json")])
    timing = _run(["-m", "tools.gpu_runs", "caffe-time", *small, "--result", str(tmp_path / "t.json")])
    assert nets.returncode == 0 and timing.returncode == 0, nets.stderr + timing.stderr
    nets, timing = (json.loads((tmp_path / f).read_text()) for f in ("n.json", "t.json"))
    assert nets["status"] == "pass" and nets["rows"][0]["max_scaled_diff"] == 0
    h2h = timing["head_to_head"]
    assert h2h["device"] == "cpu" and h2h["fps"]["df1seg"] > 0
    record = h2h["timings"]["df1seg"]   # a timing record (tools.report.timings)
    assert record["samples"] == 2 and record["protocol"]["rounds"] == 2 and record["engine"] == "caffe-time"
    if "icnet" in h2h["fps"]:   # ICNet needs the reference prototxt
        ratio = h2h["fps_ratio_df1seg_over_icnet"]
        assert ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1]
    else:
        assert any("icnet" in m for m in timing["missing"])


def test_caffe_time_is_given_the_gpu(caffe):
    """`-gpu N` reaches the binary: the CPU-only build refuses it."""
    net = prepare_net(timing_net("df1seg", (64, 64))[0])
    with CaffeTimeEngine(gpu=0).prepare(net) as run, pytest.raises(CaffeTimeError, match="exit"):
        run.timed(1)


@pytest.mark.parametrize("value,device", [("", None), ("cpu", None), ("gpu", 0), ("GPU:2", 2)])
def test_caffe_device_from_the_environment(monkeypatch, value, device):
    monkeypatch.setenv("DFSEG_CAFFE_DEVICE", value)
    assert caffe_device() == device


def test_bad_caffe_device_is_refused(monkeypatch):
    monkeypatch.setenv("DFSEG_CAFFE_DEVICE", "tpu")
    with pytest.raises(CaffeNotFound, match="cpu, gpu or gpu:N"):
        caffe_device()
