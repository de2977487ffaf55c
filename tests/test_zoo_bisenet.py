"""BiSeNet-1 (Xception39) and BiSeNet-2 (ResNet-18), caffe_models/zoo/bisenet{1,2}.yaml: the
architecture of the first author's public release (ycszen/TorchSeg, model/bisenet), counted
layer by layer here and against the paper's figures; the forms agree; the nets run in our
Caffe (the attention's channel-wise multiply is Caffe's Scale with two bottoms), merge their
BN as tools.merge_bn does, and pass `tools.to_onnx --check`.

What the paper's figures are (Yu et al., "BiSeNet: Bilateral Segmentation Network for
Real-time Semantic Segmentation", ECCV 2018, FLOPs and parameters at 3x640x360):
* "FLOPs" are multiply-accumulates of the convolutions: Table 1's FCN-32s rows (the context
  path alone) give Xception39 185.5 M and Res18 8.5 G, which the context paths here have
  within 0.3 %;
* "parameters" are MiB of float32 weights, not a count: the release's BiSeNet (Xception39,
  19 classes) has 1.54 M parameters (TorchSeg issue #30, counted with sum(p.numel()); a
  comment there: "They seem to mistake the model size on disk as the number of model
  parameters"): 1.54 M x 4 bytes is 5.88 MiB, the paper's "5.8M"; ResNet-18 BiSeNet's
  12.89 M make 49.19 MiB, the paper's "49.0M" (and Table 1's FCN-32s Res18 "42.7M" is
  ResNet-18's 11.18 M).
The whole nets' multiply-accumulates are 5.7 % (Xception39) and 7.2 % (ResNet-18) above the
paper's 2.9 G and 10.8 G: see test_total_macs_against_the_paper.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from prototxt_gen import layers as L
from prototxt_gen.analysis import analyze
from prototxt_gen.encoding import EncodingError
from prototxt_gen.generate import default_forms, net_for
from prototxt_gen.models import load_model
from prototxt_gen.netbuilder import NetBuilder
from prototxt_gen.zoo import bisenet
from tests.test_caffe_merge_bn import randomize
from tests.test_caffe_nets import assert_shapes_as_analysed, run_random
from tests.test_zoo_nets import assert_merged_form_is_merge_bn, assert_merged_weights_compute_the_same
from tools.export.pycaffe_net import load_net

REPO = Path(__file__).resolve().parent.parent
NETS = ["bisenet1", "bisenet2"]
BACKBONE = {"bisenet1": "xception39", "bisenet2": "resnet18"}
TOLERANCE = 0.02
PAPER_HW = (360, 640)     # the paper's 640x360 (W x H)
SMALL = (180, 320)
MIB = 2 ** 20

PAPER = "Yu et al., ECCV 2018, BiSeNet's FLOPs / parameters at 3x640x360"
PAPER_MIB = {"bisenet1": 5.8, "bisenet2": 49.0}            # "5.8M" / "49.0M" parameters
PAPER_TOTAL_MACS = {"bisenet1": 2.9e9, "bisenet2": 10.8e9}  # "2.9G" / "10.8G" FLOPs
TABLE1 = "Yu et al., ECCV 2018, Table 1 (FCN-32s: the context path alone, 3x640x360)"
TABLE1_CONTEXT_MACS = {"bisenet1": 185.5e6, "bisenet2": 8.5e9}
RELEASE_PARAMS = ("github.com/yu-changqian/TorchSeg issue #30: the release's BiSeNet "
                  "(Xception39, 19 classes), sum(p.numel()) = 1.54 M", 1.54e6)


# ----------------------------------------------------------------------------- the release, by hand

class Count:
    """Learnable parameters (weights, biases, BN's scale and shift) and multiply-accumulates
    of a list of convolutions, as the release's modules declare them."""

    def __init__(self):
        self.params = self.macs = 0

    def conv(self, cin, cout, k, hw, stride=1, groups=1, bn=True, bias=False):
        pad = k // 2
        out = tuple((s + 2 * pad - k) // stride + 1 for s in hw)
        self.params += cout * (cin // groups) * k * k + (cout if bias else 0) + (2 * cout if bn else 0)
        self.macs += out[0] * out[1] * cout * (cin // groups) * k * k
        return out


def _pool(hw):          # the release's MaxPool2d(3, 2, padding=1)
    return tuple((s + 2 - 3) // 2 + 1 for s in hw)


def xception39(c: Count, hw):
    """furnace/base_model/xception.py: Xception(Block, [4, 8, 4], [16, 32, 64]); a Block is
    three SeparableConvBnRelu (depthwise without BN, pointwise with BN), x4 expansion."""
    hw, cin, outs = _pool(c.conv(3, 8, 3, hw, 2)), 8, []

    def separable(ci, co, h, stride=1):
        return c.conv(ci, co, 1, c.conv(ci, ci, 3, h, stride, groups=ci, bn=False))

    for blocks, mid in ((4, 16), (8, 32), (4, 64)):
        for i in range(blocks):
            stride = 2 if i == 0 else 1
            if i == 0:
                separable(cin, mid * 4, hw, 2)                # the projection shortcut
            hw = separable(mid, mid * 4, separable(mid, mid, separable(cin, mid, hw, stride)))
            cin = mid * 4
        outs.append((cin, hw))
    return outs


def resnet18(c: Count, hw):
    hw, cin, outs = _pool(c.conv(3, 64, 7, hw, 2)), 64, []
    for s, width in enumerate((64, 128, 256, 512)):
        for i in range(2):
            stride = 2 if i == 0 and s > 0 else 1
            if stride != 1 or cin != width:
                c.conv(cin, width, 1, hw, stride)
            hw, cin = c.conv(width, width, 3, c.conv(cin, width, 3, hw, stride)), width
        outs.append((cin, hw))
    return outs[-3:]


def release_count(net: str, hw, classes: int = 19, context_only: bool = False) -> Count:
    """model/bisenet/cityscapes.bisenet.{X39,R18}/network.py at inference (the main head)."""
    c = Count()
    (c8, hw8), (c16, hw16), (c32, hw32) = {"bisenet1": xception39, "bisenet2": resnet18}[net](c, hw)
    if context_only:
        return c
    sp = c.conv(64, 64, 3, c.conv(64, 64, 3, c.conv(3, 64, 7, hw, 2), 2), 2)   # spatial path
    c.conv(64, 128, 1, sp)
    c.conv(c32, 128, 1, (1, 1))                                  # global context
    for cin, h in ((c32, hw32), (c16, hw16)):                    # ARMs
        c.conv(cin, 128, 3, h)
        c.conv(128, 128, 1, (1, 1))
    c.conv(128, 128, 3, hw16)                                    # refinements
    c.conv(128, 128, 3, hw8)
    c.conv(256, 256, 1, hw8)                                     # FFM
    c.conv(256, 256, 1, (1, 1), bn=False)
    c.conv(256, 256, 1, (1, 1), bn=False)
    c.conv(256, 64, 3, hw8)                                      # head
    c.conv(64, classes, 1, hw8, bn=False, bias=True)
    return c


def _learnable(analysis) -> int:
    # BatchNorm's blobs are its running statistics and Caffe's moving-average factor.
    return sum(layer.params for layer in analysis.layers if layer.type != "BatchNorm")


def _context_path_macs(name: str, hw) -> int:
    nb = NetBuilder()
    nb.add(L.input_layer((1, 3, *hw)))
    bisenet.context_path(nb, load_model(name).net.architecture["context_path"], hw)
    return analyze(nb.net).macs


# ----------------------------------------------------------------------------- counts

@pytest.mark.parametrize("hw", [PAPER_HW, SMALL])
@pytest.mark.parametrize("name", NETS)
def test_the_release_layer_by_layer(name, hw):
    result = analyze(net_for(name, "deploy", input_size=hw))
    expected = release_count(name, hw)
    assert (_learnable(result), result.macs) == (expected.params, expected.macs)
    assert _context_path_macs(name, hw) == release_count(name, hw, context_only=True).macs


@pytest.mark.parametrize("name", NETS)
def test_parameters_as_the_paper_counts_them(name):
    """The paper's "parameters" are MiB of float32 weights (module docstring)."""
    mib = _learnable(analyze(net_for(name, "deploy", input_size=PAPER_HW))) * 4 / MIB
    assert mib == pytest.approx(PAPER_MIB[name], rel=TOLERANCE), f"{name}: {mib:.2f} MiB ({PAPER})"


def test_parameters_as_the_release_counts_them():
    source, count = RELEASE_PARAMS
    measured = _learnable(analyze(net_for("bisenet1", "deploy", input_size=PAPER_HW)))
    assert measured == pytest.approx(count, rel=TOLERANCE), f"{measured:,} ({source})"


@pytest.mark.parametrize("name", NETS)
def test_context_path_macs_match_table1(name):
    measured = _context_path_macs(name, PAPER_HW)
    assert measured == pytest.approx(TABLE1_CONTEXT_MACS[name], rel=TOLERANCE), \
        f"{BACKBONE[name]}: {measured:,} MACs ({TABLE1})"


def test_total_macs_against_the_paper():
    """Not within 2 %: 3.07 G and 11.58 G against the paper's 2.9 G and 10.8 G.  The context
    paths match Table 1, so the gap is in the spatial path and the decoder, and the paper's
    own figures leave those 2.71 G with Xception39 and 2.30 G with ResNet-18, whereas the
    ResNet-18 net's ARMs read features twice as wide, so its decoder costs more with any one
    design (here 2.88 G and 3.09 G).  No honest reading meets both totals; the gap is pinned
    so that a change to the nets shows."""
    rest = {}
    for name in NETS:
        total = analyze(net_for(name, "deploy", input_size=PAPER_HW)).macs
        assert 1.0 < total / PAPER_TOTAL_MACS[name] < 1.08, f"{name}: {total:,} ({PAPER})"
        rest[name] = total - _context_path_macs(name, PAPER_HW)
    paper_rest = {n: PAPER_TOTAL_MACS[n] - TABLE1_CONTEXT_MACS[n] for n in NETS}
    assert rest["bisenet2"] > rest["bisenet1"] and paper_rest["bisenet2"] < paper_rest["bisenet1"]


# ----------------------------------------------------------------------------- forms

@pytest.mark.parametrize("name", NETS)
def test_forms_agree(name):
    model = load_model(name)
    assert model.is_zoo and model.is_segmentation and model.net.input_hw == PAPER_HW
    assert default_forms(name) == ("deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn")
    results = {form: analyze(net_for(name, form), phase="TRAIN" if "caffetime" in form else "TEST")
               for form in default_forms(name)}
    assert len({r.macs for r in results.values()}) == 1
    assert "BatchNorm" not in {l.type for l in net_for(name, "deploy_mergebn").layer}
    deploy = results["deploy"]
    assert [l.name for l in deploy.layers if l.type in ("Softmax", "ArgMax")] == ["prob", "pred"]
    assert deploy.layer("prob").tops[0].shape == (1, 19, *PAPER_HW)
    assert deploy.layer("spatial/out").tops[0].shape == (1, 128, 45, 80)
    assert deploy.layer("ffm/concat").tops[0].shape == (1, 256, 45, 80)
    assert not [l for l in results["caffetime"].layers if l.type in ("Softmax", "ArgMax")]


@pytest.mark.parametrize("name", NETS)
def test_merged_form_is_merge_bn_of_the_bn_form(name):
    assert_merged_form_is_merge_bn(name, SMALL)


def test_sizes_that_do_not_halve_evenly_are_one_error():
    with pytest.raises(EncodingError, match="halve evenly"):
        net_for("bisenet1", "deploy", input_size=(180, 322))


# ----------------------------------------------------------------------------- in Caffe

@pytest.mark.parametrize("form", ["deploy", "deploy_mergebn"])
@pytest.mark.parametrize("name", NETS)
def test_runs_forward_in_caffe(caffe, name, form, tmp_path):
    param = net_for(name, form, input_size=SMALL)
    net = randomize(caffe, param, tmp_path / "net.caffemodel")
    assert_shapes_as_analysed(net, param)
    run_random(net)
    prob = net.blobs["prob"].data
    assert prob.shape == (1, 19, *SMALL) and np.isfinite(prob).all() and prob.std() > 0
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    assert (net.blobs["pred"].data[:, 0] == prob.argmax(axis=1)).mean() > 0.999
    # The ARM's attention: Scale with the flattened sigmoid vector multiplies channel-wise.
    fm, vector = net.blobs["arm32/conv" if "mergebn" in form else "arm32/conv/bn"].data, \
        net.blobs["arm32/flat"].data
    assert vector.shape == (1, 128) and 0 <= vector.min() and vector.max() <= 1 and vector.std() > 0
    assert np.allclose(net.blobs["arm32/mul"].data, fm * vector[:, :, None, None], rtol=1e-5, atol=1e-6)
    ffm = net.blobs["ffm/conv" if "mergebn" in form else "ffm/conv/bn"].data
    assert np.allclose(net.blobs["ffm/sum"].data, ffm * (1 + net.blobs["ffm/flat"].data[:, :, None, None]),
                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NETS)
def test_merged_weights_compute_the_same_in_caffe(caffe, name, tmp_path):
    assert_merged_weights_compute_the_same(caffe, net_for(name, "deploy", input_size=SMALL), tmp_path)


def test_caffetime_form_runs_in_the_train_phase(caffe):
    """`caffe time` builds the TRAIN phase: BatchNorm then normalises the 1x1 attention maps
    by their own batch statistics, which must not break the net."""
    param = net_for("bisenet1", "caffetime", input_size=SMALL)
    net = load_net(caffe, param, "TRAIN")
    assert_shapes_as_analysed(net, param, phase="TRAIN")
    assert np.isfinite(run_random(net)["head/up"]).all()


@pytest.mark.parametrize("name,form", [(n, f) for n in NETS for f in ("deploy", "deploy_mergebn")])
def test_to_onnx_check(caffe, name, form, tmp_path, capsys):
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for(name, form, input_size=SMALL)))
    main = importlib.import_module("tools.to_onnx").main
    code = main([str(proto), "--out", str(tmp_path / "net.onnx"), "--check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "check passed" in out


def test_cli_writes_the_four_forms(tmp_path):
    p = subprocess.run([sys.executable, "-m", "prototxt_gen", "bisenet2", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"bisenet2_{form}.prototxt" for form in sorted(default_forms("bisenet2"))]
