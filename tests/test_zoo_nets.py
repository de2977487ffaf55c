"""The paper's comparison nets (caffe_models/zoo/*.yaml, built by prototxt_gen.zoo) are the
published architectures: parameters and multiply-accumulates as prototxt_gen.analysis counts
them equal the published figures within 2 %; the merged-BN forms are what tools.merge_bn
makes of the BN forms; and the nets made only of BVLC layers run forward in our Caffe.

Two parameter counts, as publications give them:
* "params": the learnable parameters (convolution / fully connected weights and biases, BN's
  scale and shift), i.e. every parameter blob but BatchNorm's running statistics;
* "merged_params": the BN-folded deployment (BN became convolution biases), as tools that
  count converted models (OpenVINO's Open Model Zoo) report them.
MACs are those of convolutions, deconvolutions and fully connected layers at the given HxW.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from prototxt_gen.analysis import analyze
from prototxt_gen.encoding import EncodingError
from prototxt_gen.generate import default_forms, net_for
from prototxt_gen.models import load_model, model_names, zoo_names
from prototxt_gen.zoo import ZooSpecError, build_net, zoo_net
from tests.test_caffe_merge_bn import assert_same_outputs, randomize
from tests.test_caffe_nets import assert_shapes_as_analysed, run_random
from tools.export.merge_bn import merge_files, merge_net
from prototxt_gen.netio import write_net
from tools.export.pycaffe_net import load_net


def assert_merged_form_is_merge_bn(name: str, input_size: tuple[int, int]) -> None:
    """tools.merge_bn folds a zoo net's BN form into the generator's merged form, layer for layer
    (shared with the other zoo tests)."""
    merged, folds = merge_net(net_for(name, "deploy", input_size=input_size))
    expected = net_for(name, "deploy_mergebn", input_size=input_size)
    assert folds and [l.name for l in merged.layer] == [l.name for l in expected.layer]
    for got, want in zip(merged.layer, expected.layer):
        assert got == want, f"layer {got.name}:\n{got}\n!=\n{want}"


def assert_merged_weights_compute_the_same(caffe, param, tmp_path) -> None:
    """Random weights and BN statistics on the BN form, merged by tools.merge_bn: every BatchNorm
    folded and the same outputs in Caffe."""
    net_path, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    write_net(param, net_path)
    original = randomize(caffe, param, weights)
    out_net, out_weights = tmp_path / "merged.prototxt", tmp_path / "merged.caffemodel"
    folds = merge_files(net_path, weights, out_net, out_weights)
    assert len(folds) == sum(layer.type == "BatchNorm" for layer in param.layer)
    assert_same_outputs(caffe, original, param, out_net, out_weights)

REPO = Path(__file__).resolve().parent.parent
NINE = ["resnet18", "resnet50", "googlenet", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1",
        "shufflenet_v2", "segnet", "enet"]
TOLERANCE = 0.02
CLS = (224, 224)
SEG = (360, 640)        # Table 4's smallest frame, where the ENet paper gives its figures


@dataclass(frozen=True)
class Fact:
    net: str
    what: str            # "params" | "merged_params" | "macs"
    value: float
    source: str
    input_hw: tuple[int, int] = CLS


FACTS = [
    Fact("resnet18", "params", 11_689_512, "torchvision resnet18 (He et al. 2016, Table 1 architecture)"),
    Fact("resnet18", "macs", 1.8e9, "He et al., CVPR 2016, Table 1: 1.8 x 10^9 FLOPs"),
    Fact("resnet50", "params", 25.56e6, "He et al.'s Caffe release (ResNet-50-deploy.prototxt), 25.56 M"),
    Fact("resnet50", "merged_params", 25.53e6, "open_model_zoo models/public/index.md, ResNet 50: 25.53 MParams"),
    Fact("resnet50", "macs", 3.86e9, "the Caffe release at 224x224: 3.86 GMACs (paper Table 1: 3.8 x 10^9)"),
    Fact("googlenet", "params", 6.999e6, "open_model_zoo index, googlenet-v1 (BVLC Caffe): 6.999 MParams"),
    # Szegedy et al. Table 1's ops column sums to 1.502 G with conv1 printed as 34 M; conv1,
    # 7x7x3 x 64 outputs x 112x112, is 118 M, which makes the column 1.586 G.
    Fact("googlenet", "macs", 1.586e9, "Szegedy et al., CVPR 2015, Table 1 (ops column, conv1 corrected)"),
    Fact("mobilenet_v1", "params", 4.2e6, "Howard et al. 2017, Table 8: 4.2 million parameters"),
    Fact("mobilenet_v1", "merged_params", 4.221e6, "open_model_zoo index, mobilenet-v1-1.0-224 (Caffe): 4.221"),
    Fact("mobilenet_v1", "macs", 569e6, "Howard et al. 2017, Table 8: 569 million mult-adds"),
    Fact("mobilenet_v2", "params", 3.47e6, "tensorflow/models slim mobilenet README, v2 1.0-224: 3.47 M"),
    Fact("mobilenet_v2", "merged_params", 3.489e6, "open_model_zoo index, mobilenet-v2 (Caffe): 3.489"),
    Fact("mobilenet_v2", "macs", 300e6, "Sandler et al., CVPR 2018, Table 4: 300 M multiply-adds"),
    Fact("shufflenet_v1", "params", 1.9e6, "megvii-model/ShuffleNet-Series V1 README, 1.0x g=3: 1.9 M"),
    Fact("shufflenet_v1", "macs", 138e6, "megvii-model/ShuffleNet-Series V1 README, 1.0x g=3: 138 M FLOPs"),
    Fact("shufflenet_v1", "macs", 140e6, "Zhang et al., CVPR 2018, Table 2, ShuffleNet 1x (g=3): 140 MFLOPs"),
    Fact("shufflenet_v2", "params", 2_278_604, "torchvision shufflenet_v2_x1_0 (Ma et al. 2018: 2.3 M)"),
    Fact("shufflenet_v2", "merged_params", 2.2705e6, "open_model_zoo index, shufflenet-v2-x1.0: 2.2705"),
    Fact("shufflenet_v2", "macs", 146e6, "Ma et al., ECCV 2018, Table 5, ShuffleNet v2 1x: 146 MFLOPs"),
    Fact("segnet", "params", 29.46e6, "Paszke et al. 2016 (ENet), Table 3: SegNet 29.46 M", SEG),
    # The same table's 286.03 GFLOPs at 640x360 count a multiply-accumulate as two operations.
    Fact("segnet", "macs", 286.03e9 / 2, "Paszke et al. 2016, Table 3: SegNet 286.03 GFLOPs at 640x360", SEG),
    Fact("enet", "params", 0.37e6, "Paszke et al. 2016, Table 3: ENet 0.37 M", SEG),
]


def _learnable(analysis) -> int:
    # BatchNorm's blobs are its running mean / variance and Caffe's moving-average factor.
    return sum(layer.params for layer in analysis.layers if layer.type != "BatchNorm")


def measure(fact: Fact) -> int:
    if fact.what == "merged_params":
        return analyze(net_for(fact.net, "deploy_mergebn", input_size=fact.input_hw)).params
    result = analyze(net_for(fact.net, "deploy", input_size=fact.input_hw))
    return _learnable(result) if fact.what == "params" else result.macs


@pytest.mark.parametrize("fact", FACTS, ids=[f"{f.net}-{f.what}-{f.value:.4g}" for f in FACTS])
def test_published_figure(fact):
    measured = measure(fact)
    assert measured == pytest.approx(fact.value, rel=TOLERANCE), \
        f"{fact.net} {fact.what}: measured {measured:,}, published {fact.value:,.0f} ({fact.source})"


def enet_table1_macs(h: int, w: int, classes: int) -> int:
    """ENet's convolution multiply-accumulates worked out from the paper's Table 1 (layer
    output sizes, 3x3 main convolutions, 5-tap asymmetric pairs, projection ratio 4).
    Table 3's 3.83 GFLOPs exceeds twice this (3.45 G at 640x360) by 11 %: it counts more than
    the convolutions, so the layer table is the check here."""
    p1 = (h // 2) * (w // 2)
    p2, p3 = p1 // 4, p1 // 16

    def bottleneck(cin, inner, cout, main_taps, proj_taps=1):
        return cin * inner * proj_taps + inner * inner * main_taps + inner * cout

    macs = 13 * 3 * 9 * p1                                                  # initial
    macs += bottleneck(16, 16, 64, 9, proj_taps=4) * p2                     # 1.0 (2x2/2)
    macs += 4 * bottleneck(64, 16, 64, 9) * p2                              # 1.1-1.4
    macs += bottleneck(64, 32, 128, 9, proj_taps=4) * p3                    # 2.0
    macs += 12 * bottleneck(128, 32, 128, 9) * p3                           # regular, dilated
    macs += 4 * bottleneck(128, 32, 128, 5 + 5) * p3                        # asymmetric 5
    macs += (128 * 64 + 128 * 16 + 16 * 16 * 9) * p3 + 16 * 64 * p2         # 4.0
    macs += 2 * bottleneck(64, 16, 64, 9) * p2                              # 4.1, 4.2
    macs += (64 * 16 + 64 * 4 + 4 * 4 * 9) * p2 + 4 * 16 * p1               # 5.0
    macs += bottleneck(16, 4, 16, 9) * p1                                   # 5.1
    return macs + 16 * classes * 4 * p1                                     # fullconv 2x2/2


def test_enet_macs_follow_table1():
    result = analyze(net_for("enet", "deploy", input_size=SEG))
    assert result.macs == enet_table1_macs(*SEG, classes=19)


@pytest.mark.parametrize("name", NINE)
def test_named_and_forms_agree(name):
    """Every form sets up at the model's size and the forms agree: same MACs; merged-BN forms
    have no BatchNorm; deploy carries the heads, caffetime none."""
    model = load_model(name)
    assert model.is_zoo and name in zoo_names() and name not in model_names()
    size = model.net.input_hw
    results = {form: analyze(net_for(name, form), phase="TRAIN" if "caffetime" in form else "TEST")
               for form in ("deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn")}
    assert len({r.macs for r in results.values()}) == 1
    assert results["deploy"].params == results["caffetime"].params
    assert results["deploy_mergebn"].params == results["caffetime_mergebn"].params
    merged_types = {l.type for l in net_for(name, "deploy_mergebn").layer}
    assert "BatchNorm" not in merged_types
    has_bn = "BatchNorm" in {l.type for l in net_for(name, "deploy").layer}
    assert ("deploy_mergebn" in default_forms(name)) == has_bn == (name != "googlenet")
    deploy = results["deploy"]
    assert deploy.layers[0].tops[0].shape == (1, 3, *size)
    heads = [l.name for l in deploy.layers if l.type in ("Softmax", "ArgMax")]
    if model.is_segmentation:
        assert heads == ["prob", "pred"]
        assert deploy.layer("prob").tops[0].shape == (1, 19, *size)
    else:
        assert heads == ["prob"] and deploy.layer("prob").tops[0].shape == (1, 1000)
    assert not [l for l in results["caffetime"].layers if l.type in ("Softmax", "ArgMax")]


@pytest.mark.parametrize("name", [n for n in NINE if n not in ("googlenet", "enet")])
def test_merged_form_is_merge_bn_of_the_bn_form(name):
    """tools.merge_bn folds the BN form into the generator's merged form, layer for layer.
    (ENet's initial block normalises a Concat, which merge_bn cannot fold; the generator
    makes that BatchNorm + Scale one Scale.)"""
    assert_merged_form_is_merge_bn(name, (64, 128))


def test_enet_merged_keeps_one_affine_scale():
    merged = net_for("enet", "deploy_mergebn", input_size=(64, 128))
    scales = [l for l in merged.layer if l.type == "Scale"]
    assert [(l.name, list(l.bottom)) for l in scales] == [("initial/bn_scale", ["initial/concat"])]
    assert scales[0].scale_param.bias_term


# ----------------------------------------------------------------------------- in Caffe

SMALL = {"segnet": (64, 128), "enet": (64, 128)}       # classification nets: 64x64


def _missing_layers(caffe, param) -> set[str]:
    return {l.type for l in param.layer} - set(caffe.layer_type_list())


def _caffe_param(caffe, name: str, form: str):
    """The net at its small test size.  Our Caffe builds every layer the nets use
    (ShuffleChannel, Upsample: caffe/layers), so a missing one is a broken build: a failure
    naming the layer, never a skip (tests/conftest.py)."""
    param = net_for(name, form, input_size=SMALL.get(name, (64, 64)))
    missing = _missing_layers(caffe, param)
    assert not missing, f"our Caffe has no {', '.join(sorted(missing))} layer (caffe/layers; rebuild: make caffe)"
    return param


@pytest.mark.parametrize("form", ["deploy", "deploy_mergebn"])
@pytest.mark.parametrize("name", NINE)
def test_runs_forward_in_caffe(caffe, name, form, tmp_path):
    """Loads and runs in our Caffe with random weights (deconvolutions too), every blob
    shaped as the analysis says, the heads a proper distribution and its arg-max."""
    param = _caffe_param(caffe, name, form)
    net = randomize(caffe, param, tmp_path / "net.caffemodel")
    rng = np.random.default_rng(1)
    for layer in param.layer:
        if layer.type == "Deconvolution":
            w = net.params[layer.name][0].data
            w[...] = rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[1:])), w.shape)
    assert_shapes_as_analysed(net, param)
    run_random(net)
    prob = net.blobs["prob"].data
    assert np.isfinite(prob).all() and prob.std() > 0
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    if "pred" in net.blobs:        # segmentation: the arg-max over the classes, at the input's size
        assert net.blobs["pred"].data.shape == (1, 1, *SMALL[name])
        assert (net.blobs["pred"].data[:, 0] == prob.argmax(axis=1)).mean() > 0.999


@pytest.mark.parametrize("name", [n for n in NINE if n not in ("googlenet", "enet")])
def test_merged_weights_compute_the_same_in_caffe(caffe, name, tmp_path):
    """Random weights and BN statistics on the BN form, merged by tools.merge_bn into the
    generator's merged form: the same activations in Caffe."""
    assert_merged_weights_compute_the_same(caffe, _caffe_param(caffe, name, "deploy"), tmp_path)


def test_resnet50_runs_at_224_in_caffe(caffe):
    param = net_for("resnet50", "deploy_mergebn")
    net = load_net(caffe, param, "TEST")
    assert_shapes_as_analysed(net, param)
    assert run_random(net)["prob"].shape == (1, 1000)


def test_the_bvlc_only_nets_need_no_new_layer(caffe):
    """Issue 12 has these five run in our Caffe as it is (BVLC layers and Interp)."""
    for name in ("resnet18", "resnet50", "googlenet", "mobilenet_v1", "mobilenet_v2"):
        assert not _missing_layers(caffe, net_for(name, "deploy")), name


# ----------------------------------------------------------------------------- the CLI and data

def test_cli_writes_the_default_forms(tmp_path):
    def run(name):
        p = subprocess.run([sys.executable, "-m", "prototxt_gen", name, "--out", str(tmp_path / name)],
                           cwd=REPO, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return sorted(path.name for path in (tmp_path / name).iterdir())

    assert run("mobilenet_v2") == ["mobilenet_v2_caffetime.prototxt", "mobilenet_v2_caffetime_mergebn.prototxt",
                                   "mobilenet_v2_deploy.prototxt", "mobilenet_v2_deploy_mergebn.prototxt"]
    assert run("googlenet") == ["googlenet_caffetime.prototxt", "googlenet_deploy.prototxt"]
    p = subprocess.run([sys.executable, "-m", "prototxt_gen", "enet", "--forms", "val", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown form(s) val of enet" in p.stderr


def test_bad_architecture_is_one_error_line():
    good = {"name": "x", "family": "resnet", "num_classes": 10, "input": "32x32",
            "architecture": {"stem": {"width": 8, "kernel": 3, "stride": 1, "pool": {"kernel": 2, "stride": 2}},
                             "block": "basic", "stages": [[1, 8], [1, 16]]}}
    assert analyze(build_net(zoo_net(good, "x.yaml"))).layer("fc10").tops[0].shape == (1, 10)
    with pytest.raises(ZooSpecError, match=r"x\.yaml: unknown family 'vgg'"):
        zoo_net({**good, "family": "vgg"}, "x.yaml")
    with pytest.raises(EncodingError, match=r"x: architecture: missing key 'stages'"):
        zoo_net({**good, "architecture": {k: v for k, v in good["architecture"].items() if k != "stages"}}, "x.yaml")
    with pytest.raises(EncodingError, match=r"x\.yaml: size 'x32'"):
        zoo_net({**good, "input": "x32"}, "x.yaml")
    enet = load_model("enet").net
    with pytest.raises(EncodingError, match="multiples of 8"):
        net_for("enet", "deploy", input_size=(100, 100))
    assert enet.num_classes == 19


@pytest.mark.parametrize("exporter,suffix", [("to_onnx", ".onnx"), ("to_torch", ".py")])
@pytest.mark.parametrize("name,form", [(n, f) for n in NINE for f in default_forms(n) if f.startswith("deploy")])
def test_exports_and_passes_the_check(caffe, name, form, exporter, suffix, tmp_path, capsys):
    """`python -m tools.to_onnx NET --check` and `python -m tools.to_torch NET --check`: ONNX
    Runtime and the generated PyTorch module compute every blob Caffe computes (random weights,
    ≤ 1e-4 relative), the nets that need our Upsample/ShuffleChannel too."""
    import importlib

    from google.protobuf import text_format

    main = importlib.import_module(f"tools.{exporter}").main
    param = _caffe_param(caffe, name, form)
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(param))
    code = main([str(proto), "--out", str(tmp_path / f"net{suffix}"), "--check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "check passed" in out
