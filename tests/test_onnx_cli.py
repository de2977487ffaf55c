"""`python -m tools.to_onnx` and the caffemodel helpers: round trips, and clear one-line
errors (exit code 2, no traceback) for unsupported layers and weights that do not fit."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import net_for
from prototxt_gen.netio import NetReadError
from tools.export.caffe_net import CaffeNetError, build_net
from tools.export.caffemodel import (CaffemodelError, fit_weights, random_weights, read_caffemodel,
                              write_caffemodel)
from tools.export.caffe_net import UnsupportedLayerError
from tools.export.onnx_convert import convert

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def to_onnx(*args):
    return subprocess.run([sys.executable, "-m", "tools.to_onnx", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT)


def run(model_path_or_proto, x):
    data = (model_path_or_proto.SerializeToString() if hasattr(model_path_or_proto, "graph")
            else str(model_path_or_proto))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


@pytest.fixture
def df1seg_files(tmp_path):
    param = net_for("df1seg", "deploy", input_size=(64, 128))
    proto = tmp_path / "df1seg_deploy.prototxt"
    proto.write_text(text_format.MessageToString(param))
    weights = random_weights(build_net(param), seed=3)
    model = tmp_path / "df1seg.caffemodel"
    write_caffemodel(model, weights)
    return proto, model, weights


def test_caffemodel_round_trip(df1seg_files):
    _, model, weights = df1seg_files
    back = read_caffemodel(model)
    assert back.keys() == weights.keys()
    for name in weights:
        for a, b in zip(weights[name], back[name]):
            np.testing.assert_array_equal(a, b)


def test_cli_converts_prototxt_and_caffemodel(df1seg_files, tmp_path):
    proto, model, weights = df1seg_files
    out = tmp_path / "out" / "df1seg.onnx"
    result = to_onnx(proto, model, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "pred" in result.stdout and str(model) in result.stdout
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 128)).astype(np.float32)
    in_memory = convert(proto, weights)
    got, want = run(out, x), run(in_memory, x)
    assert [g.shape for g in got] == [(1, 1, 64, 128), (1, 1, 8, 16)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # other weights give other outputs: the file's weights were really used
    other = run(convert(proto, None), x)
    assert not np.array_equal(other[0], got[0])


def test_cli_data_layer_needs_input_shape(reference_dir, tmp_path):
    release = reference_dir / "release" / "prototxt" / "df1.prototxt"
    result = to_onnx(release, "--out", tmp_path / "df1.onnx")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ImageData" in result.stderr and "--input" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = to_onnx(release, "--out", tmp_path / "df1.onnx", "--input", "1x3x224x224")
    assert result.returncode == 0, result.stderr
    (fc,) = run(tmp_path / "df1.onnx", np.zeros((1, 3, 224, 224), np.float32))
    assert fc.shape == (1, 1000)


def test_bad_input_shape_is_a_usage_error(df1seg_files, tmp_path):
    proto, _, _ = df1seg_files
    result = to_onnx(proto, "--out", tmp_path / "x.onnx", "--input", "3x224")
    assert result.returncode == 2 and "NxCxHxW" in result.stderr


def test_unsupported_layers_are_named(tmp_path):
    net = caffe_pb2.NetParameter(name="odd")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 8, 8])
    net.layer.add(name="act", type="Threshold", bottom=["data"], top=["a"])
    net.layer.add(name="norm", type="MVN", bottom=["a"], top=["b"])
    with pytest.raises(UnsupportedLayerError, match=r"act \(Threshold\), norm \(MVN\)"):
        convert(net)
    proto = tmp_path / "odd.prototxt"
    proto.write_text(text_format.MessageToString(net))
    result = to_onnx(proto, "--out", tmp_path / "odd.onnx")
    assert result.returncode == 2 and "act (Threshold)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "odd.onnx").exists()


def test_weights_that_do_not_fit_are_reported_per_layer_and_blob(df1seg_files, tmp_path):
    proto, _, weights = df1seg_files
    bad = dict(weights)
    bad["conv1"] = [np.zeros((32, 3, 5, 5), np.float32)]  # prototxt says 3x3
    del bad["conv2"]
    bn = next(name for name in weights if name.endswith("/bn"))
    bad[bn] = bad[bn][:2]
    with pytest.raises(CaffemodelError) as err:
        fit_weights(build_net(proto), bad, "x.caffemodel")
    message = str(err.value)
    assert "'conv1' (Convolution) blob 0: x.caffemodel has shape (32, 3, 5, 5), the net needs " \
           "(32, 3, 3, 3)" in message
    assert "'conv2' (Convolution): missing from x.caffemodel" in message
    assert f"'{bn}' (BatchNorm): x.caffemodel has 2 blobs, the net needs 3" in message
    model = tmp_path / "bad.caffemodel"
    write_caffemodel(model, bad)
    result = to_onnx(proto, model, "--out", tmp_path / "bad.onnx")
    assert result.returncode == 2 and "'conv1'" in result.stderr
    assert "Traceback" not in result.stderr


def test_not_a_caffemodel(df1seg_files, tmp_path):
    proto, _, _ = df1seg_files
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff\xfe not protobuf \x00\x01" * 10)
    with pytest.raises(CaffemodelError, match="junk.caffemodel"):
        read_caffemodel(junk)
    result = to_onnx(proto, junk, "--out", tmp_path / "j.onnx")
    assert result.returncode == 2 and "junk.caffemodel" in result.stderr


def test_legacy_4d_blobs_are_accepted():
    net = caffe_pb2.NetParameter(name="legacy")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 2, 4, 4])
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["c"])
    conv.convolution_param.num_output = 3
    conv.convolution_param.kernel_size.append(1)
    old = caffe_pb2.NetParameter()
    layer = old.layer.add(name="conv")
    w = layer.blobs.add(num=3, channels=2, height=1, width=1)
    w.data.extend([1, 0, 0, 1, 1, 1])
    b = layer.blobs.add(num=1, channels=1, height=1, width=3)
    b.data.extend([0.5, -0.5, 2])
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".caffemodel") as f:
        f.write(old.SerializeToString())
        f.flush()
        model = convert(net, f.name)
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    (out,) = run(model, x)
    np.testing.assert_allclose(out[0, 2], x[0, 0] + x[0, 1] + 2)
    np.testing.assert_allclose(out[0, 0], x[0, 0] + 0.5)


def test_unknown_bottom_and_missing_file_errors(tmp_path):
    net = caffe_pb2.NetParameter(name="broken")
    net.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 1, 2, 2])
    net.layer.add(name="relu", type="ReLU", bottom=["nothing"], top=["r"])
    with pytest.raises(CaffeNetError, match="'relu' reads blob 'nothing'"):
        build_net(net)
    with pytest.raises(NetReadError, match="cannot read"):  # the one reader's error
        build_net(tmp_path / "missing.prototxt")
