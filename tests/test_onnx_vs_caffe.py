"""ONNX Runtime vs pycaffe on whole nets with random weights and random BatchNorm statistics:
every blob of the net (not only the outputs) within 1e-4 relative of Caffe's.

Weights are random, with statistics calibrated in Caffe (`tools.export.onnx_check.calibrate`),
written by tools.export.caffemodel and read by Caffe; the exporter takes them from Caffe.

Nets: every named model in `deploy` and `deploy_mergebn` form at 1x3x128x256, the four
released prototxts (df1/df2a at 1x3x224x224, df1seg/df1seg_mergebn at 1x3x256x512 with their
pyramid re-sized by tools.export.reference_nets) and ICNet at 1x3x257x513 (its pyramid pooling and
fixed 33x65 Interp sizes re-sized the same way; its evaluation size 1025x2049 is too heavy for
a 2-core test run).

Caffe comes from tools.runtime.caffe (`make caffe`); a missing Caffe is a failure, not a skip.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from prototxt_gen.models import model_names
from tools.export.caffemodel import write_caffemodel
from tools.export.reference_nets import RELEASE_SEG_SIZE, deploy_param, fit_fixed_sizes, icnet_deploy
from tools.export.onnx_check import check
from tools.export.onnx_convert import convert


def compare_with_caffe(caffe, param, tmp_path, seed=0):
    """Run `param` (Input-fed) in pycaffe and ONNX Runtime with the same calibrated random
    weights (tools.export.onnx_check, the code behind `to_onnx --check`): every blob each
    layer writes, in-place chains included. Returns the number of blobs compared."""
    _, report = check(param, seed=seed, caffe=caffe)
    assert report.ok, "; ".join([report.summary()] + [c.describe() for c in report.failures[:8]])
    return len({c.blob for c in report.comparisons})


@pytest.mark.parametrize("form", ["deploy", "deploy_mergebn"])
@pytest.mark.parametrize("name", model_names())
def test_named_model_matches_caffe(caffe, name, form, tmp_path):
    from prototxt_gen.generate import net_for
    assert compare_with_caffe(caffe, net_for(name, form, input_size=(128, 256)), tmp_path) > 20


@pytest.mark.parametrize("file,shape", [
    ("df1.prototxt", (1, 3, 224, 224)),
    ("df2a.prototxt", (1, 3, 224, 224)),
    ("df1seg.prototxt", (1, 3, 256, 512)),
    ("df1seg_mergebn.prototxt", (1, 3, 256, 512)),
])
def test_release_prototxt_matches_caffe(caffe, reference_dir, file, shape, tmp_path):
    path = reference_dir / "release" / "prototxt" / file
    if "seg" in file:
        param = fit_fixed_sizes(path, RELEASE_SEG_SIZE, shape)
    else:
        param = deploy_param(path, shape)
    assert compare_with_caffe(caffe, param, tmp_path) > 20


def test_icnet_matches_caffe(caffe, reference_dir, tmp_path):
    assert compare_with_caffe(caffe, icnet_deploy(reference_dir, (257, 513)), tmp_path) > 90


# ----------------------------------------------------------------------------- single layers
# The corner cases of tests/test_onnx_ops.py (checked there against NumPy transcriptions of
# Caffe's loops) checked here against Caffe itself.

def _ops():
    """The one-layer net builders of test_onnx_ops.py (tests/ is not a package)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "onnx_ops_builders", Path(__file__).with_name("test_onnx_ops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OPS = _ops()


def run_one_layer(caffe, param, feeds, weights, tmp_path):
    proto, model_file = tmp_path / "one.prototxt", tmp_path / "one.caffemodel"
    proto.write_text(text_format.MessageToString(param))
    write_caffemodel(model_file, weights)
    net = caffe.Net(str(proto), caffe.TEST, weights=str(model_file))
    for name, value in feeds.items():
        net.blobs[name].reshape(*value.shape)
        net.blobs[name].data[...] = value
    net.forward()
    model = convert(param, weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0], net.blobs[param.layer[-1].top[0]].data


def _pool_cases():
    AVE, MAX, pooling_layer = OPS.AVE, OPS.MAX, OPS.pooling_layer
    sizes = [((3, 3), (2, 2), (2, 2), (1, 1)), ((7, 9), (3, 3), (2, 2), (0, 0)),
             ((8, 16), (32, 32), (32, 32), (0, 0)), ((33, 65), (13, 25), (10, 20), (0, 0)),
             ((6, 10), (3, 3), (2, 2), (1, 1)), ((7, 8), (1, 2), (3, 3), (0, 0)),
             ((5, 7), (3, 2), (2, 3), (1, 1))]
    return [(f"{'max' if m == MAX else 'ave'}-{s}-{k}-{st}-{p}",
             s, pooling_layer(m, k, st, p)) for m in (MAX, AVE) for s, k, st, p in sizes]


def _interp_cases():
    interp_layer = OPS.interp_layer
    cases = [((9, 17), dict(zoom_factor=2)), ((8, 16), dict(shrink_factor=3)),
             ((9, 17), dict(shrink_factor=2, zoom_factor=3)), ((1, 2), dict(height=33, width=65)),
             ((40, 30), dict(height=7, width=13)), ((5, 5), dict(height=1, width=1)),
             ((10, 12), dict(zoom_factor=2, pad_beg=-1, pad_end=-2))]
    return [(f"interp-{s}-{p}", s, interp_layer(**p)) for s, p in cases]


@pytest.mark.parametrize("case", _pool_cases() + _interp_cases(), ids=lambda c: c[0])
def test_pooling_and_interp_corner_cases_match_caffe(caffe, case, tmp_path):
    one_layer_net = OPS.one_layer_net
    _, size, layer = case
    x = np.random.default_rng(5).normal(size=(1, 3) + size).astype(np.float32)
    got, want = run_one_layer(caffe, one_layer_net(x.shape, layer), {"data": x}, {}, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factor", [0.0, 0.37])
def test_batchnorm_factor_matches_caffe(caffe, factor, tmp_path):
    one_layer_net = OPS.one_layer_net
    layer = caffe_pb2.LayerParameter(name="bn", type="BatchNorm")
    layer.batch_norm_param.eps = 1e-3
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 4, 3, 3)).astype(np.float32)
    weights = {"bn": [rng.normal(size=4).astype(np.float32),
                      rng.uniform(0.5, 2, 4).astype(np.float32), np.array([factor], np.float32)]}
    got, want = run_one_layer(caffe, one_layer_net(x.shape, layer), {"data": x}, weights,
                              tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_argmax_ties_and_grouped_deconvolution_match_caffe(caffe, tmp_path):
    conv_layer, one_layer_net = OPS.conv_layer, OPS.one_layer_net
    net = one_layer_net((1, 4, 3, 3), conv_layer("Deconvolution", 4, (4, 4), (2, 2), (1, 1),
                                                 group=2, bias=False))
    arg = net.layer.add(name="pred", type="ArgMax", bottom=["out"], top=["pred"])
    arg.argmax_param.axis = 1
    x = np.ones((1, 4, 3, 3), np.float32)  # constant input: deconv channels tie in places
    w = np.ones((4, 2, 4, 4), np.float32)
    got, want = run_one_layer(caffe, net, {"data": x}, {"conv": [w]}, tmp_path)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) == 1  # every position is a tie, broken the same way
