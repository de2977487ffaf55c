"""The released DF nets and ICNet load and run forward in real Caffe (CPU).
Needs `make caffe` (a missing Caffe fails, never skips) and the reference material."""
from __future__ import annotations

import numpy as np
import pytest

from prototxt_gen.netio import read_net
from prototxt_gen.netprep import upgrade_net_input, with_input_layer
from tools.export.pycaffe_net import load_net


def assert_shapes_as_analysed(net, param, phase="TEST"):
    """Every blob Caffe made has the shape prototxt_gen.analysis infers."""
    from prototxt_gen.analysis import analyze
    inferred = {top.name: tuple(top.shape) for layer in analyze(param, phase=phase).layers
                for top in layer.tops}
    caffe_shapes = {name: tuple(blob.data.shape) for name, blob in net.blobs.items()}
    assert caffe_shapes == {name: inferred[name] for name in caffe_shapes}


def run_random(net, seed=0):
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data[...] = rng.uniform(0, 1, blob.data.shape)
    return net.forward()


def test_icnet_full_resolution_forward(caffe, reference_dir):
    """ICNet's evaluation net as ICNet times it: old-style input_dim 1x3x1025x2049, Interp
    with shrink_factor, zoom_factor and explicit sizes."""
    param = read_net(reference_dir / "icnet" / "icnet_cityscapes.prototxt")
    assert list(param.input_dim) == [1, 3, 1025, 2049]
    net = load_net(caffe, upgrade_net_input(param))
    assert_shapes_as_analysed(net, param)
    out = run_random(net)
    shapes = {name: blob.data.shape for name, blob in net.blobs.items()}
    assert shapes["data_sub2"] == (1, 3, 513, 1025)        # shrink_factor 2: (1025-1)/2+1
    assert shapes["conv6_cls"] == (1, 19, 257, 513)
    assert out["conv6_interp"].shape == (1, 19, 1025, 2049)  # zoom_factor 4: 257 + 256*3
    assert np.isfinite(out["conv6_interp"]).all()
    assert out["conv6_interp"].std() > 0


SEG_INPUT = {"data": (1, 3, 1024, 2048), "label": (1, 1, 1024, 2048)}
CLS_INPUT = {"data": (1, 3, 224, 224), "label": (1,)}


@pytest.mark.parametrize("name,shapes,expected", [
    ("df1", CLS_INPUT, {"fc": (1, 1000)}),
    ("df2a", CLS_INPUT, {"fc": (1, 1000)}),
    ("df1seg", SEG_INPUT, {"pred": (1, 1, 1024, 2048), "pred_d8": (1, 1, 128, 256)}),
    ("df1seg_mergebn", SEG_INPUT, {"pred": (1, 1, 1024, 2048), "pred_d8": (1, 1, 128, 256)}),
])
def test_released_net_runs_with_input_layer(caffe, reference_dir, name, shapes, expected):
    param = with_input_layer(read_net(reference_dir / "release" / "prototxt" / f"{name}.prototxt"),
                             shapes)
    net = load_net(caffe, param, "TEST")
    assert_shapes_as_analysed(net, param)
    run_random(net)
    for blob, shape in expected.items():
        assert net.blobs[blob].data.shape == shape
        assert np.isfinite(net.blobs[blob].data).all()
    if "pred" in expected:       # ArgMax over the 19 Cityscapes classes
        assert 0 <= net.blobs["pred"].data.min() and net.blobs["pred"].data.max() <= 18


def test_released_seg_net_train_phase(caffe, reference_dir):
    """`caffe time` runs the TRAIN phase: the release's TRAIN Interp sizes (32x32 at 1/32)
    fit a 1024x1024 training crop."""
    param = with_input_layer(read_net(reference_dir / "release" / "prototxt" / "df1seg_mergebn.prototxt"),
                             {"data": (1, 3, 1024, 1024), "label": (1, 1, 1024, 1024)})
    net = load_net(caffe, param, "TRAIN")
    run_random(net)
    assert net.blobs["psp.pool1.interp"].data.shape[2:] == (32, 32)
    assert net.blobs["Decoder_score.up8"].data.shape == (1, 19, 1024, 1024)
    assert "prob" not in net.blobs                      # Softmax/ArgMax are TEST-only


GENERATED_FORMS = [("deploy", "TEST"), ("deploy_mergebn", "TEST"),
                   ("caffetime", "TRAIN"), ("caffetime_mergebn", "TRAIN")]


def _generated_cases():
    from prototxt_gen.models import model_names
    return [(model, form, phase) for model in model_names() for form, phase in GENERATED_FORMS]


@pytest.mark.parametrize("model,form,phase", _generated_cases(),
                         ids=[f"{m}-{f}" for m, f, _ in _generated_cases()])
def test_generated_net_runs(caffe, model, form, phase):
    """Every named model in every Input-fed form loads and runs forward in real Caffe, in the
    phase it is meant for (`caffe time` runs TRAIN), at a size other than the default, with
    every blob shaped as prototxt_gen.analysis says."""
    from prototxt_gen.generate import net_for
    classification = model in ("df1", "df2", "df2a", "dflite")
    size = (224, 224) if classification else (256, 512)
    param = net_for(model, form, input_size=size)
    net = load_net(caffe, param, phase)
    assert net.blobs["data"].data.shape == (1, 3, *size)
    assert_shapes_as_analysed(net, param, phase)
    out = run_random(net)
    for name, blob in out.items():
        assert np.isfinite(blob).all(), name
    if classification:
        assert net.blobs["fc"].data.shape == (1, 1000)
    else:
        d8 = model.endswith("_d8")
        score = "Decoder_score" if form.endswith("mergebn") or d8 else "Decoder_score/bn"
        assert net.blobs[score].data.shape[1] == 19
        if not d8:
            assert net.blobs["Decoder_score.up8"].data.shape == (1, 19, *size)


PYTHON_LAYER = '''
import caffe


class Double(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str or 2)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.factor * top[0].diff
'''


def test_python_layers_are_built_in(caffe, tmp_path, monkeypatch):
    """pycaffe was built with Python layers (WITH_PYTHON_LAYER): training code relies on them."""
    from prototxt_gen import caffe_pb2
    (tmp_path / "dfseg_test_double.py").write_text(PYTHON_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    param = caffe_pb2.NetParameter(name="python", force_backward=True)
    param.layer.add(name="x", type="Input", top=["x"]).input_param.shape.add(dim=[1, 2, 3, 3])
    layer = param.layer.add(name="double", type="Python", bottom=["x"], top=["y"])
    layer.python_param.module = "dfseg_test_double"
    layer.python_param.layer = "Double"
    layer.python_param.param_str = "3"
    net = load_net(caffe, param)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2, 3, 3))
    net.blobs["x"].data[...] = x
    np.testing.assert_allclose(net.forward()["y"], 3 * x, rtol=1e-6)
    net.blobs["y"].diff[...] = 1.0
    net.backward()
    np.testing.assert_allclose(net.blobs["x"].diff, 3.0)
