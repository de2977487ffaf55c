"""tools.caffe_time: the real `caffe time` binary, its log turned into tables.
Needs `make caffe` (a missing Caffe fails, never skips)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prototxt_gen import caffe_pb2
from prototxt_gen.netprep import with_image_input as with_timed_input
from tools.engines.machine import busy_cpu_report
from prototxt_gen.netio import read_net, write_net

REPO = Path(__file__).resolve().parent.parent


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.caffe_time", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def release_log(reference_dir) -> Path:
    return reference_dir / "release" / "log" / "log_df1seg_mergebn_caffetime_titanx.txt"


def test_parse_release_log_json(release_log):
    result = cli("parse", release_log, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["forward_ms"] == pytest.approx(32.5541)
    assert round(data["fps"], 1) == 30.7
    assert data["backward_ms"] == pytest.approx(30.9262)
    assert data["iterations"] == 100
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["Decoder_score.up8"]["forward_ms"] == pytest.approx(7.7448)
    assert data["layers"][0]["name"] == "input" and "conv1" in layers


def test_parse_release_log_tables(release_log):
    markdown = cli("parse", release_log, "--markdown").stdout
    assert "32.5541 ms = 30.7 FPS" in markdown
    assert "| Decoder_score.up8 | 7.7448 |" in markdown
    rows = cli("parse", release_log, "--csv").stdout.splitlines()
    assert rows[0] == "layer,forward_ms,backward_ms"
    assert any(row.startswith("Decoder_score.up8,7.7448,") for row in rows)


def test_parse_rejects_other_logs(reference_dir, tmp_path):
    result = cli("parse", reference_dir / "release" / "log" / "log_df1_val.txt", "--json")
    assert result.returncode == 2
    assert "Average Forward pass" in result.stderr and "Traceback" not in result.stderr
    result = cli("parse", tmp_path / "missing.txt")
    assert result.returncode == 2 and "missing.txt" in result.stderr


def phased_net() -> caffe_pb2.NetParameter:
    """Input -> conv -> Interp, with one extra layer per phase."""
    net = caffe_pb2.NetParameter(name="phased")
    net.layer.add(name="data", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 32, 48])
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 8
    conv.convolution_param.kernel_size.append(3)
    conv.convolution_param.weight_filler.type = "gaussian"
    up = net.layer.add(name="up", type="Interp", bottom=["conv"], top=["up"])
    up.interp_param.zoom_factor = 2
    for phase, name in ((caffe_pb2.TRAIN, "train_only"), (caffe_pb2.TEST, "test_only")):
        layer = net.layer.add(name=name, type="ReLU", bottom=["up"], top=[name])
        layer.include.add(phase=phase)
    return net


@pytest.mark.parametrize("phase,present,absent", [("TRAIN", "train_only", "test_only"),
                                                   ("TEST", "test_only", "train_only")])
def test_run_times_the_requested_phase(caffe_bin, tmp_path, phase, present, absent):
    path = tmp_path / "phased.prototxt"
    write_net(phased_net(), path)
    log = tmp_path / "caffe.log"
    result = cli("run", path, "--iterations", 3, "--phase", phase, "--log", log, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["iterations"] == 3 and data["phase"] == phase
    assert data["forward_ms"] > 0 and data["fps"] == pytest.approx(1000 / data["forward_ms"])
    names = [layer["name"] for layer in data["layers"]]
    assert names[:3] == ["data", "conv", "up"] and present in names and absent not in names
    assert "Benchmark ends" in log.read_text()       # the real binary's log was kept


def test_run_resizes_a_release_net_and_drops_label_layers(caffe_bin, reference_dir):
    """df1's ImageData (TEST only) becomes an Input; its Accuracy layers need the label and go."""
    result = cli("run", reference_dir / "release" / "prototxt" / "df1.prototxt",
                 "--iterations", 1, "--input", "1x3x224x224", "--json")
    assert result.returncode == 0, result.stderr
    names = [layer["name"] for layer in json.loads(result.stdout)["layers"]]
    assert names[0] == "input" and "fc" in names
    assert not any(name.startswith("accuracy") for name in names)


def test_run_reports_caffe_failure(caffe_bin, reference_dir):
    """The release's TRAIN Interp sizes fit 1024x1024 only: Caffe's own check message comes back."""
    result = cli("run", reference_dir / "release" / "prototxt" / "df1seg_mergebn.prototxt",
                 "--iterations", 1, "--input", "1x3x256x256")
    assert result.returncode == 2
    assert "caffe time failed" in result.stderr and "Check failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_arguments_exit_2(tmp_path):
    result = cli("run", tmp_path / "x.prototxt", "--input", "3x224")
    assert result.returncode == 2 and "NxCxHxW" in result.stderr


def test_legacy_input_fields_are_resized(reference_dir):
    icnet = read_net(reference_dir / "icnet" / "icnet_cityscapes.prototxt")
    timed = with_timed_input(icnet, (1, 3, 513, 1025))
    assert not timed.input and not timed.input_dim
    assert timed.layer[0].type == "Input" and list(timed.layer[0].top) == ["data"]
    assert list(timed.layer[0].input_param.shape[0].dim) == [1, 3, 513, 1025]
    assert len(timed.layer) == len(icnet.layer) + 1


def test_busy_cpu_is_reported():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        report = busy_cpu_report(sample_s=0.5, top=1000)   # every busy process named: CI may run others
    finally:
        spinner.kill()
        spinner.wait()
    assert report is not None and f"pid {spinner.pid}" in report
