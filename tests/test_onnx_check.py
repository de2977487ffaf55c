"""`python -m tools.to_onnx NET --out X.onnx --check`: the export against pycaffe, layer by
layer, on the model zoo's classic nets (tests/zoo_fixtures.py, small inputs), ICNet at its own
size, and small nets of every newly exported layer (the forks' max-unpooling with BVLC's
pooling mask, ShuffleChannel, Slice, LRN, Crop, Power, PReLU, Eltwise). A deliberately wrong
exporter must be caught and named. Needs `make caffe`."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from tests.zoo_fixtures import FIXTURES
from tools.export.caffe_net import build_net
from tools.export.caffemodel import random_weights, write_caffemodel
from tools.export import onnx_convert
from tools.export.onnx_check import check
from tools.to_onnx import main

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def write(tmp_path, param, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(text_format.MessageToString(param))
    return path


def run_check(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", FIXTURES)
def test_zoo_net_check_passes(caffe, capsys, tmp_path, name):
    build, input_shape = FIXTURES[name]
    proto = write(tmp_path, build())
    extra = ["--input", "x".join(map(str, input_shape))] if input_shape else []
    code, out, err = run_check(capsys, proto, "--out", tmp_path / "net.onnx", "--check", *extra)
    assert code == 0, err
    assert "check passed" in out
    checked = int(out.split("check passed: ")[1].split()[0])
    assert checked >= len([l for l in build().layer if l.type not in ("Input", "Data")]) - 2
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [build_net(proto, input_shape).outputs[0]]


def test_icnet_at_its_own_size(caffe, capsys, reference_dir, tmp_path):
    """ICNet's fixed 33x65 pyramid pins it to 1025x2049: checked once, as released."""
    proto = reference_dir / "icnet" / "icnet_cityscapes.prototxt"
    code, out, err = run_check(capsys, proto, "--out", tmp_path / "icnet.onnx", "--check")
    assert code == 0, err
    assert "check passed" in out and "inputs data (1, 3, 1025, 2049)" in out


UNPOOL_NET = """
name: "unpool_shuffle"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 45 dim: 60 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" top: "pool1_mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" top: "pool2_mask" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool3" type: "Pooling" bottom: "conv2" top: "pool3" top: "pool3_mask" pooling_param { pool: MAX kernel_h: 1 kernel_w: 2 stride: 3 round_mode: FLOOR } }
layer { name: "up3" type: "Upsample" bottom: "pool3" bottom: "pool3_mask" top: "up3" upsample_param { upsample_h: 23 upsample_w: 30 } }
layer { name: "up2" type: "Upsample" bottom: "pool2" bottom: "pool2_mask" top: "up2" upsample_param { upsample_h: 23 upsample_w: 30 } }
layer { name: "merge" type: "Eltwise" bottom: "up2" bottom: "up3" top: "merged" eltwise_param { operation: MAX } }
layer { name: "up1" type: "Upsample" bottom: "merged" bottom: "pool1_mask" top: "up1" upsample_param { scale: 2 pad_out_h: true } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "up1" top: "shuffled" shuffle_channel_param { group: 4 } }
layer { name: "split" type: "Slice" bottom: "shuffled" top: "a" top: "b" slice_param { slice_point: 3 } }
layer { name: "power" type: "Power" bottom: "a" top: "a2" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "norm1" type: "LRN" bottom: "b" top: "b2" lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 k: 2 } }
layer { name: "norm2" type: "LRN" bottom: "b2" top: "b3" lrn_param { local_size: 3 alpha: 0.3 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "prelu" type: "PReLU" bottom: "b3" top: "b3" }
layer { name: "prelu_shared" type: "PReLU" bottom: "a2" top: "a3" prelu_param { channel_shared: true } }
layer { name: "cat" type: "Concat" bottom: "a3" bottom: "b3" top: "cat" }
layer { name: "crop" type: "Crop" bottom: "cat" bottom: "conv2" top: "crop" crop_param { axis: 2 offset: 3 offset: 5 } }
layer { name: "sum" type: "Eltwise" bottom: "crop" bottom: "conv2" top: "sum" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "prod" type: "Eltwise" bottom: "sum" bottom: "conv2" top: "prod" eltwise_param { operation: PROD } }
"""


def test_new_layers_check_passes(caffe, capsys, tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(UNPOOL_NET)
    code, out, err = run_check(capsys, proto, "--out", tmp_path / "net.onnx", "--check")
    assert code == 0, err
    assert "check passed: 25 blobs of 21 layers" in out
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / "net.onnx")).graph.node}
    assert {"MaxUnpool", "LRN", "PRelu", "Split", "Transpose", "Pow"} <= ops


def test_a_wrong_exporter_is_caught_and_named(caffe, capsys, tmp_path, monkeypatch):
    """An LRN exported with the wrong k: the check fails at that layer, names it first, and
    the CLI exits 1 (the model is still written)."""
    right = onnx_convert.EXPORTERS["LRN"]

    def wrong_k(g, layer, blobs, in_shape):
        changed = caffe_pb2.LayerParameter()
        changed.CopyFrom(layer)
        changed.lrn_param.k += 0.01
        right(g, changed, blobs, in_shape)

    monkeypatch.setitem(onnx_convert.EXPORTERS, "LRN", wrong_k)
    proto = tmp_path / "net.prototxt"
    proto.write_text(UNPOOL_NET)
    code, out, err = run_check(capsys, proto, "--out", tmp_path / "net.onnx", "--check")
    assert code == 1
    assert "first diverging layer 'norm1' (LRN) blob 'b2'" in err
    assert (tmp_path / "net.onnx").exists()


def test_given_weights_and_input(caffe, capsys, tmp_path):
    param = FIXTURES["mobilenet_v1"][0](32)
    proto = write(tmp_path, param)
    weights = tmp_path / "w.caffemodel"
    write_caffemodel(weights, random_weights(build_net(param), seed=7))
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
    code, out, err = run_check(capsys, proto, "--out", tmp_path / "m.onnx", "--check",
                               "--weights", weights, "--data", data)
    assert code == 0, err
    assert f"weights: {weights}" in out
    np.save(data, np.zeros((1, 3, 16, 16), np.float32))
    code, _, err = run_check(capsys, proto, "--out", tmp_path / "m.onnx", "--check", "--data", data)
    assert code == 2 and "(1, 3, 16, 16)" in err and "(1, 3, 32, 32)" in err


def test_layer_missing_from_caffe_is_one_line(caffe, tmp_path):
    """Our Caffe has no PSPNet BN: the export works, the check says why it cannot run."""
    param = caffe_pb2.NetParameter(name="bn")
    param.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(
        dim=[1, 2, 4, 4])
    param.layer.add(name="bn", type="BN", bottom=["data"], top=["data"])
    proto = write(tmp_path, param)
    done = subprocess.run([sys.executable, "-m", "tools.to_onnx", str(proto), "--out",
                           str(tmp_path / "bn.onnx"), "--check"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2
    assert "has no BN layer" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_check_report_orders_comparisons_as_caffe_runs(caffe):
    param = text_format.Parse(UNPOOL_NET, caffe_pb2.NetParameter())
    _, report = check(param, caffe=caffe)
    layers = [c.layer for c in report.comparisons]
    assert layers[:4] == ["conv1", "relu1", "pool1", "pool1"]  # pooled values, then the mask
    assert [c.is_index for c in report.comparisons[2:4]] == [False, True]
    assert report.ok


def test_unpooling_is_rechecked_on_caffes_masks_only_when_mask_flips_explain_it():
    """A near-tie in a pooling window may pick another index in each engine; the check then
    compares unpooling on Caffe's masks, but only when the first failure is an Upsample whose
    differing outputs (two per moved value) that mask's differing indices account for."""
    from tools.export.onnx_check import BlobComparison, CheckReport, _unpooling_moved_by_mask_flips
    net = build_net(text_format.Parse(UNPOOL_NET, caffe_pb2.NetParameter()))

    def report(mask_differing, up_differing, failing_layer="up2"):
        mask = BlobComparison("pool2", "Pooling", "pool2_mask", mask_differing / 1000, 0.0, True,
                              1e-3, size=1000, differing=mask_differing)
        up = BlobComparison(failing_layer, "Upsample", failing_layer, 1e-2, 1.0, False, 1e-4,
                            size=5000, differing=up_differing)
        return CheckReport("w", 1e-4, [mask, up])

    assert _unpooling_moved_by_mask_flips(report(1, 2), net) == 1
    assert _unpooling_moved_by_mask_flips(report(1, 3), net) == 0  # more moved than flipped
    assert _unpooling_moved_by_mask_flips(report(0, 2), net) == 0  # no flip: a real error
    assert _unpooling_moved_by_mask_flips(report(1, 2, "up3"), net) == 0  # up3 reads pool3's


def test_recheck_on_caffes_masks_runs_the_unpooling_on_them(caffe, monkeypatch):
    import tools.export.onnx_check as onnx_check
    monkeypatch.setattr(onnx_check, "_unpooling_moved_by_mask_flips", lambda report, net: 3)
    _, report = check(text_format.Parse(UNPOOL_NET, caffe_pb2.NetParameter()), caffe=caffe)
    assert report.ok and "3 pooling-mask indices differ" in report.summary()
    assert len(report.comparisons) == 25
