"""`python -m tools.to_torch NET [WEIGHTS] --out NAME.py --check`: the generated PyTorch module
against pycaffe, every blob of every layer, on every named DF / DF-Seg model (BatchNorm and
merged-BN forms, -d8 heads included), the authors' released prototxts, ICNet, the model zoo's
classic nets (tests/zoo_fixtures.py) and small nets of every other layer type; weights trained
here by our own runner; a deliberately wrong conversion caught and named at its layer; the
module readable, traceable and loadable without dfseg.  Needs `make caffe` (a missing Caffe is
a failure, not a skip)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import net_for
from prototxt_gen.models import model_names
from tests.zoo_fixtures import FIXTURES
from tools.export import torch_ops
from tools.export.caffe_net import build_net
from tools.export.caffemodel import random_weights, read_caffemodel, write_caffemodel
from tools.export.reference_nets import RELEASE_SEG_SIZE, deploy_param, fit_fixed_sizes, icnet_deploy
from tools.export.torch_check import check
from tools.export.torch_convert import convert, instantiate
from tools.to_torch import main

REPO = Path(__file__).resolve().parent.parent
UNPOOL_NET = __import__("tests.test_onnx_check", fromlist=["UNPOOL_NET"]).UNPOOL_NET


def passes(caffe, param, **kwargs) -> int:
    """The check on `param`: every blob within 1e-4; returns the number of blobs compared."""
    _, report = check(param, caffe=caffe, **kwargs)
    assert report.ok, "; ".join([report.summary()] + [c.describe() for c in report.failures[:8]])
    return len(report.comparisons)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- whole nets


@pytest.mark.parametrize("form", ["deploy", "deploy_mergebn"])
@pytest.mark.parametrize("name", model_names())
def test_named_model_matches_caffe(caffe, name, form):
    assert passes(caffe, net_for(name, form, input_size=(128, 256))) > 20


@pytest.mark.parametrize("file,shape", [
    ("df1.prototxt", (1, 3, 224, 224)),
    ("df2a.prototxt", (1, 3, 224, 224)),
    ("df1seg.prototxt", (1, 3, 256, 512)),
    ("df1seg_mergebn.prototxt", (1, 3, 256, 512)),
])
def test_release_prototxt_matches_caffe(caffe, reference_dir, file, shape):
    path = reference_dir / "release" / "prototxt" / file
    param = fit_fixed_sizes(path, RELEASE_SEG_SIZE, shape) if "seg" in file else \
        deploy_param(path, shape)
    assert passes(caffe, param) > 20


def test_icnet_matches_caffe(caffe, reference_dir):
    assert passes(caffe, icnet_deploy(reference_dir, (257, 513))) > 90


@pytest.mark.parametrize("name", FIXTURES)
def test_zoo_fixture_check_passes_through_the_cli(caffe, capsys, tmp_path, name):
    build, input_shape = FIXTURES[name]
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(build()))
    extra = ["--input", "x".join(map(str, input_shape))] if input_shape else []
    code, out, err = run(capsys, proto, "--out", tmp_path / "net.py", "--check", *extra)
    assert code == 0, err
    assert "check passed" in out
    assert (tmp_path / "net.py").exists() and (tmp_path / "net.pt").exists()


def test_every_other_layer_type_matches_caffe(caffe):
    """Max-unpooling with BVLC's pooling mask (padded, FLOOR and fixed-size forms),
    ShuffleChannel, Slice, both LRNs, Power, PReLU (per channel and shared), Concat, Crop,
    Eltwise SUM with coefficients, PROD and MAX: 25 blobs of 21 layers."""
    param = text_format.Parse(UNPOOL_NET, caffe_pb2.NetParameter())
    assert passes(caffe, param) == 25


SMALL_LAYERS = """
name: "small_layers"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 dim: 9 dim: 11 } } }
layer { name: "pool_big_pad" type: "Pooling" bottom: "data" top: "p1" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 2 } }
layer { name: "pool_max_pad" type: "Pooling" bottom: "data" top: "p2" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 2 } }
layer { name: "pool_floor" type: "Pooling" bottom: "data" top: "p3" pooling_param { pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR } }
layer { name: "pool_global" type: "Pooling" bottom: "data" top: "g" pooling_param { pool: AVE global_pooling: true } }
layer { name: "gflat" type: "Reshape" bottom: "g" top: "gflat" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "gscale" type: "Scale" bottom: "data" bottom: "gflat" top: "scaled" scale_param { axis: 0 bias_term: true } }
layer { name: "interp" type: "Interp" bottom: "scaled" top: "zoomed" interp_param { zoom_factor: 2 pad_beg: -1 pad_end: -1 } }
layer { name: "deconv" type: "Deconvolution" bottom: "zoomed" top: "up" convolution_param { num_output: 6 group: 3 kernel_size: 4 stride: 2 pad: 1 bias_term: false } }
layer { name: "dil" type: "Convolution" bottom: "up" top: "dil" convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2 group: 2 } }
layer { name: "bn" type: "BatchNorm" bottom: "dil" top: "dil" batch_norm_param { eps: 0.001 } }
layer { name: "sig" type: "Sigmoid" bottom: "dil" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "sig" top: "tanh" }
layer { name: "leaky" type: "ReLU" bottom: "tanh" top: "tanh" relu_param { negative_slope: 0.1 } }
layer { name: "flat" type: "Flatten" bottom: "tanh" top: "flat" flatten_param { axis: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc" inner_product_param { num_output: 5 axis: 2 transpose: true } }
layer { name: "reshape" type: "Reshape" bottom: "fc" top: "r" reshape_param { shape { dim: 2 dim: -1 } axis: 1 num_axes: 1 } }
layer { name: "softmax" type: "Softmax" bottom: "r" top: "prob" softmax_param { axis: 1 } }
layer { name: "argmax_axis" type: "ArgMax" bottom: "prob" top: "am" argmax_param { axis: 1 } }
layer { name: "argmax_flat" type: "ArgMax" bottom: "prob" top: "am_flat" }
layer { name: "maxval" type: "ArgMax" bottom: "prob" top: "maxval" argmax_param { axis: 3 out_max_val: true } }
layer { name: "drop" type: "Dropout" bottom: "p1" top: "p1" }
layer { name: "split" type: "Split" bottom: "p2" top: "p2a" top: "p2b" }
layer { name: "elt_max" type: "Eltwise" bottom: "p2a" bottom: "p2b" bottom: "p2a" top: "m3" eltwise_param { operation: MAX } }
layer { name: "slice_equal" type: "Slice" bottom: "m3" top: "s1" top: "s2" top: "s3" slice_param { axis: 1 } }
"""


def test_pooling_interp_and_shape_layers_match_caffe(caffe):
    """Pads over half the kernel (torch's pooling refuses them: the explicit path), FLOOR
    rounding, global pooling, a Scale by a second input, Interp with pads, grouped
    Deconvolution, dilated grouped Convolution, BatchNorm, Sigmoid/TanH/leaky ReLU, Flatten,
    InnerProduct on axis 2 transposed, Reshape with 0/-1 (and of a part), Softmax, the three ArgMax forms,
    Dropout, Split, an equal Slice."""
    param = text_format.Parse(SMALL_LAYERS, caffe_pb2.NetParameter())
    assert passes(caffe, param) == 27   # 24 layers; Split writes 2 blobs, Slice 3


def test_pooling_mask_flips_recompare_unpooling_on_caffes_masks(caffe, monkeypatch):
    import tools.export.torch_check as torch_check
    monkeypatch.setattr(torch_check, "unpooling_moved_by_mask_flips", lambda report, net: 2)
    _, report = check(text_format.Parse(UNPOOL_NET, caffe_pb2.NetParameter()), caffe=caffe)
    assert report.ok and "2 pooling-mask indices differ" in report.summary()
    assert len(report.comparisons) == 25


# ----------------------------------------------------------------------------- weights


def test_a_wrong_conversion_is_caught_and_named(caffe, capsys, tmp_path, monkeypatch):
    """Pooling converted in floor mode (torch's default): the check fails at the first
    pooling whose size it changes (here to nothing, so the module stops there), names it,
    and exits 1; the files are still written."""
    right = torch_ops.EMITTERS["Pooling"]

    def floor_mode(layer, blobs, bottoms, net):
        code = right(layer, blobs, bottoms, net)
        code.module = code.module.replace(")", ", ceil_mode=False)", 1) \
            if "global" not in code.module else code.module
        return code

    monkeypatch.setitem(torch_ops.EMITTERS, "Pooling", floor_mode)
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for("df1seg", "deploy", input_size=(96, 160))))
    code, out, err = run(capsys, proto, "--out", tmp_path / "net.py", "--check")
    assert code == 1, out + err
    assert "first diverging layer 'psp.pool1' (Pooling) blob 'psp.pool1': not computed" in err
    assert (tmp_path / "net.py").exists() and (tmp_path / "net.pt").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small DF-style net with BatchNorm, trained by our runner on the digits: its
    BatchNorm statistics are learnt ones, not the initial zeros."""
    from prototxt_gen.generate import to_text
    from solvers.digits_data import prepare
    from solvers.net_data import classification_train_net
    from solvers.training import train
    from solvers.solver_recipes import sgd_solver, write_solver
    work = tmp_path_factory.mktemp("trained")
    digits = prepare(work / "digits", size=32, val=497)
    net = classification_train_net("[(64),(128),(256)]", train_source=digits["train_db"],
                                   val_source=digits["val_db"], num_classes=10,
                                   input_hw=(32, 32), batch_size=16, val_batch_size=71,
                                   mean=(64.0,), scale=1 / 128)
    (work / "net.prototxt").write_text(to_text(net))
    solver = write_solver(sgd_solver("net.prototxt", base_lr=0.1, lr_policy="poly", power=2,
                                     max_iter=30, momentum=0.9, weight_decay=1e-4, test_iter=7,
                                     random_seed=1), work / "solver.prototxt")
    train(solver, work / "run", progress=False)
    return work / "net.prototxt", work / "run" / "final.caffemodel"


def test_trained_weights_convert_and_match_caffe(caffe, capsys, tmp_path, trained):
    proto, weights = trained
    blobs = read_caffemodel(weights)
    batch_norms = [b for b in blobs.values() if len(b) == 3 and b[2].size == 1]
    assert batch_norms and all(float(b[2][0]) > 0 and np.abs(b[0]).max() > 0
                               for b in batch_norms)
    code, out, err = run(capsys, proto, weights, "--input", "1x3x32x32", "--out",
                         tmp_path / "digits_net.py", "--check")
    assert code == 0, err
    assert "check passed" in out and f"weights: {weights}" in out
    state = torch.load(tmp_path / "digits_net.pt", weights_only=True)
    name = next(n for n, b in blobs.items() if len(b) == 3 and b[2].size == 1)
    attribute = name.replace("/", "_").replace(".", "_")
    factor = 1 / float(blobs[name][2][0])
    np.testing.assert_allclose(state[f"{attribute}.running_mean"].numpy(), blobs[name][0] * factor,
                               rtol=1e-6)


def test_weights_load_with_weights_only_and_load_beside_the_module(tmp_path, capsys):
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for("dflite_seg", "deploy_mergebn",
                                                         input_size=(64, 128))))
    code, out, err = run(capsys, proto, "--out", tmp_path / "lite.py", "--seed", "3")
    assert code == 0, err
    state = torch.load(tmp_path / "lite.pt", weights_only=True)
    cnet = build_net(proto)
    weights = random_weights(cnet, 3)
    np.testing.assert_array_equal(state["conv1.weight"].numpy(), weights["conv1"][0])
    done = subprocess.run([sys.executable, "-c",
                           "import sys; sys.path.insert(0, sys.argv[1]); import lite, torch; "
                           "net = lite.load(); print(net(torch.zeros(1, 3, 64, 128))[0].shape)",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "torch.Size([1, 1, 64, 128])" in done.stdout


# ----------------------------------------------------------------------------- the code


def test_generated_code_reads_like_torchvision_and_imports_only_torch():
    module = convert(net_for("df1seg", "deploy", input_size=(128, 256)))
    tree = ast.parse(module.source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"torch", "math", "pathlib"}
    net_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net")
    forward = next(n for n in net_class.body if isinstance(n, ast.FunctionDef)
                   and n.name == "forward")
    cnet = build_net(net_for("df1seg", "deploy", input_size=(128, 256)))
    assert len(forward.body) == len(cnet.layers) + 1       # one line per layer, then return
    assert "conv1 = self.conv1(data)  # conv1 (Convolution)" in module.source
    _, model = instantiate(module)
    with_params = {layer.name.replace("/", "_").replace(".", "_") for layer in cnet.layers
                   if cnet.param_shapes[layer.name]}
    assert with_params <= {name for name, _ in model.named_children()}


def test_torch_export_traces_the_module():
    module = convert(net_for("df1seg_d8", "deploy_mergebn", input_size=(64, 128)))
    _, model = instantiate(module)
    x = torch.randn(1, 3, 64, 128)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        np.testing.assert_allclose(exported.module()(x).numpy(), model(x).numpy())


def test_module_runs_at_another_size_as_caffe_would():
    """MobileNet V2 generated at 64x64 runs at 96x128 with the same weights, as Caffe's Reshape
    would: every size comes from the input at run time (DF-Seg's pyramid pooling pins those
    nets to one size, in Caffe too)."""
    from tests.zoo_fixtures import mobilenet_v2
    param = mobilenet_v2(64)
    _, model = instantiate(convert(param))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 128))
    at_64, at_other = build_net(param), build_net(param, (1, 3, 96, 128))
    assert at_other.param_shapes == at_64.param_shapes        # Caffe keeps the weights
    assert tuple(out.shape) == at_other.blob_shapes[at_other.outputs[0]]


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line(tmp_path, capsys):
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for("df1seg", "deploy", input_size=(64, 128))))
    cases = [
        ([proto, "--out", tmp_path / "x.onnx"], "must name a .py file"),
        ([tmp_path / "missing.prototxt", "--out", tmp_path / "x.py"], "missing.prototxt"),
        ([proto, tmp_path / "missing.caffemodel", "--out", tmp_path / "x.py"], "missing.caffemodel"),
        ([proto, proto, "--out", tmp_path / "x.py"], "not a caffemodel"),
        ([proto, "--out", tmp_path / "x.py", "--data", tmp_path / "x.npy"], "only used with --check"),
    ]
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert code == 2 and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_:
        main([str(proto), "--out", str(tmp_path / "x.py"), "--input", "3x224"])
    assert exit_.value.code == 2 and "NxCxHxW" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists() and not (tmp_path / "x.pt").exists()


def test_unsupported_layer_is_named(tmp_path, capsys):
    param = caffe_pb2.NetParameter(name="odd")
    param.layer.add(name="input", type="Input", top=["data"]).input_param.shape.add(dim=[1, 2, 4, 4])
    param.layer.add(name="weird", type="Exp", bottom=["data"], top=["e"])
    proto = tmp_path / "odd.prototxt"
    proto.write_text(text_format.MessageToString(param))
    code, _, err = run(capsys, proto, "--out", tmp_path / "odd.py")
    assert code == 2 and "weird (Exp)" in err and "PyTorch export" in err


def test_a_failed_write_leaves_no_half_pair(tmp_path, capsys):
    """The .pt cannot be written (a folder stands at its path): one line, and the .py is not
    written either."""
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for("dflite_seg", "deploy_mergebn",
                                                         input_size=(64, 128))))
    out = tmp_path / "pair.py"
    out.with_suffix(".pt").mkdir()
    code, _, err = run(capsys, proto, "--out", out)
    assert code == 2 and "pair.pt" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_generated_module_and_weights_load_where_only_torch_and_numpy_are(bare_python, tmp_path,
                                                                          capsys):
    """NAME.py + NAME.pt from `to_torch`, loaded by `load()` in a virtualenv holding only torch
    and numpy (no dfseg, no protobuf), give what they give here."""
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for("df1seg", "deploy_mergebn",
                                                         input_size=(64, 128))))
    assert run(capsys, proto, "--out", tmp_path / "kit" / "df1seg_small.py")[0] == 0
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 128)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy, torch; sys.path.insert(0, 'kit'); import df1seg_small as m; "
              "net = m.load(); out = net(torch.from_numpy(numpy.load('x.npy'))); "
              "numpy.save('y.npy', out[0].numpy()); print(sorted(sys.modules.keys() & "
              "{'google', 'yaml', 'tools', 'prototxt_gen', 'onnx'}))")
    done = subprocess.run([str(bare_python), "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    sys.path.insert(0, str(tmp_path / "kit"))
    try:
        import df1seg_small
        with torch.no_grad():
            here = df1seg_small.load()(torch.from_numpy(x))[0].numpy()
    finally:
        sys.path.remove(str(tmp_path / "kit"))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), here)
