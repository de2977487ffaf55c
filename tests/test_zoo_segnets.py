"""The segmentation nets of the paper's Fig. 1 and Tables 3/5 built as named models (issue 25):
ESPNet, PSPNet-101 and DeepLab-v2.  Their parameters and multiply-accumulates equal the
published or public figures within 2 % where one exists, and a count worked out from the
architecture by hand where none does; they set up in every form, run in our Caffe and pass
`tools.to_onnx --check` at a small input (the ResNet-101 nets are large)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from google.protobuf import text_format

from prototxt_gen.analysis import analyze
from prototxt_gen.generate import default_forms, net_for
from prototxt_gen.models import load_model, zoo_names
from prototxt_gen.shapes import pool_output_size
from prototxt_gen.zoo import ZooSpecError, build_net, zoo_net
from prototxt_gen.zoo.pspnet import bin_window
from tests.test_caffe_nets import assert_shapes_as_analysed, run_random
from tests.test_zoo_nets import TOLERANCE, Fact, assert_merged_form_is_merge_bn, measure
from tools.export.merge_bn import merge_net
from tools.export.pycaffe_net import load_net

NETS = ["espnet", "pspnet101", "deeplabv2"]
SMALL = (64, 128)
CITYSCAPES_HALF = (512, 1024)

# torchvision's resnet101 (He et al.'s Table 1 architecture): 44,549,160 parameters, its
# classifier (2048 x 1000 + 1000) included.  DeepLab-v2 is that backbone and four 3x3 ASPP
# classifiers with bias; no publication gives its total for 19 classes (papers quote ~44 M).
RESNET101_BACKBONE = 44_549_160 - (2048 * 1000 + 1000)
DEEPLABV2_PARAMS = RESNET101_BACKBONE + 4 * (3 * 3 * 2048 * 19 + 19)

FACTS = [
    Fact("espnet", "params", 0.364e6,
         "Mehta et al., ECCV 2018 (ESPNet, p=2, q=8): 0.364 M; sacmehta/ESPNetv2 segmentation/README.md",
         CITYSCAPES_HALF),
    Fact("pspnet101", "params", 65.7e6,
         "Mehta et al., ECCV 2018, Sec. 1: 'PSPNet has 65.7 million parameters'", (713, 713)),
    Fact("deeplabv2", "params", DEEPLABV2_PARAMS,
         "torchvision resnet101 (44,549,160) less its fc, plus ASPP 4 x (3x3x2048x19 + 19)",
         CITYSCAPES_HALF),
]


@pytest.mark.parametrize("fact", FACTS, ids=[f"{f.net}-{f.what}" for f in FACTS])
def test_published_figure(fact):
    measured = measure(fact)
    assert measured == pytest.approx(fact.value, rel=TOLERANCE), \
        f"{fact.net} {fact.what}: measured {measured:,}, published {fact.value:,.0f} ({fact.source})"


def test_espnet_macs_as_its_authors_count_them():
    """sacmehta/ESPNetv2's segmentation README gives ESPNet 424 M FLOPs: its computeFlops.py
    runs a 224x224 input, counts nn.Conv2d layers only (2 per multiply-add, halved), so the
    decoder's three ConvTranspose2d (our Deconvolutions) are left out."""
    layers = analyze(net_for("espnet", "deploy", input_size=(224, 224))).layers
    conv = sum(layer.macs for layer in layers if layer.type == "Convolution")
    deconv = sum(layer.macs for layer in layers if layer.type == "Deconvolution")
    assert conv == pytest.approx(424e6, rel=TOLERANCE)
    assert 0 < deconv < 0.1 * conv


# ----------------------------------------------------------------------------- MACs by hand
# No publication gives PSPNet-101's or DeepLab-v2's multiply-accumulates for the plain net, so
# the builders are checked against the architecture worked out by hand: ResNet-101's widths
# (He et al., Table 1), the map sizes each release's strides give, every convolution's
# cin x cout x k x k per output pixel.

def _bottleneck(cin: int, width: int) -> int:
    return cin * width + width * width * 9 + width * 4 * width


def _stage(cin: int, width: int, blocks: int) -> int:
    """A stage at one resolution: the first block with its projection, then identity blocks."""
    return _bottleneck(cin, width) + cin * 4 * width + (blocks - 1) * _bottleneck(4 * width, width)


def pspnet101_macs(classes: int = 19) -> int:
    """At 713x713, as the release's sizes go: the stem at 357, conv2 at 179, the rest at 90;
    conv3_1 reduces at 179 and strides its 3x3."""
    s1, s2, s3 = 357 * 357, 179 * 179, 90 * 90
    macs = (3 * 64 + 64 * 64 + 64 * 128) * 9 * s1
    macs += (_stage(128, 64, 1) + 2 * _bottleneck(256, 64)) * s2
    macs += 256 * 128 * s2 + (128 * 128 * 9 + 128 * 512 + 256 * 512) * s3
    macs += 3 * _bottleneck(512, 128) * s3
    macs += (_stage(512, 256, 23) + _stage(1024, 512, 3)) * s3
    macs += 2048 * 512 * (1 + 4 + 9 + 36)                    # 1x1 convolutions on the bins
    return macs + (4096 * 512 * 9 + 512 * classes) * s3


def deeplabv2_macs(classes: int = 19, rates: int = 4) -> int:
    """At 512x1024: conv1 at 256x512, res2 at 128x256, the rest at 64x128 (res3a's first 1x1
    strides)."""
    s1, s2, s3 = 256 * 512, 128 * 256, 64 * 128
    macs = 3 * 64 * 49 * s1
    macs += (_stage(64, 64, 1) + 2 * _bottleneck(256, 64)) * s2
    macs += (_stage(256, 128, 4) + _stage(512, 256, 23) + _stage(1024, 512, 3)) * s3
    return macs + rates * 2048 * classes * 9 * s3


def test_pspnet101_macs_follow_the_release():
    assert analyze(net_for("pspnet101", "deploy", input_size=(713, 713))).macs == pspnet101_macs()


def test_deeplabv2_macs_follow_the_architecture():
    assert analyze(net_for("deeplabv2", "deploy", input_size=CITYSCAPES_HALF)).macs == deeplabv2_macs()


# ----------------------------------------------------------------------------- structure

def test_pspnet101_at_713_is_the_release_layout():
    """pspnet101_cityscapes_713.prototxt: 90x90 features, pooling windows 15/30/45/90 for bins
    6/3/2/1 concatenated in that order after conv5_3, conv6 up-sampled to the input."""
    param = net_for("pspnet101", "deploy", input_size=(713, 713))
    layers = {layer.name: layer for layer in param.layer}
    windows = {b: layers[f"conv5_3_pool{b}"].pooling_param for b in (6, 3, 2, 1)}
    assert {b: (p.kernel_size, p.stride) for b, p in windows.items()} == {6: (15, 15), 3: (30, 30),
                                                                         2: (45, 45), 1: (90, 90)}
    assert list(layers["conv5_3_concat"].bottom) == ["conv5_3"] + [f"conv5_3_pool{b}_interp" for b in (6, 3, 2, 1)]
    shapes = analyze(param)
    assert shapes.layer("conv5_3").tops[0].shape == (1, 2048, 90, 90)
    assert shapes.layer("conv6_interp").tops[0].shape == (1, 19, 713, 713)
    strides = {name: layers[name].convolution_param.stride[0] for name in ("conv3_1_1x1_reduce", "conv3_1_3x3")}
    assert strides == {"conv3_1_1x1_reduce": 1, "conv3_1_3x3": 2}
    assert [layers[f"conv{s}_2_3x3"].convolution_param.dilation for s in (3, 4, 5)] == [[], [2], [4]]


@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_pyramid_windows_give_exactly_the_bins(bins):
    for size in range(bins, 130):
        window, stride = bin_window(size, bins)
        assert pool_output_size(size, window, 0, stride) == bins, size
        assert window >= stride and (bins - 1) * stride + window == size
    with pytest.raises(ValueError, match="cannot be pooled into 6 bins"):
        bin_window(5, 6)


def test_deeplabv2_names_and_aspp():
    """ResNet-101's release names (res4b1 ... res4b22), output stride 8, four dilated 3x3
    classifiers summed and up-sampled to the input."""
    param = net_for("deeplabv2", "deploy", input_size=SMALL)
    layers = {layer.name: layer for layer in param.layer}
    assert "res4b22" in layers and "res3b3" in layers and "res2c" in layers and "res5c" in layers
    assert "res4w" not in layers and "res4b23" not in layers
    aspp = [layers[f"fc1_c{i}"].convolution_param for i in range(4)]
    assert [(p.dilation[0], p.pad[0], p.num_output, p.bias_term) for p in aspp] == \
        [(r, r, 19, True) for r in (6, 12, 18, 24)]
    assert list(layers["fc1"].bottom) == [f"fc1_c{i}" for i in range(4)]
    shapes = analyze(param)
    assert shapes.layer("res5c").tops[0].shape == (1, 2048, 8, 16)
    assert shapes.layer("fc1_interp").tops[0].shape == (1, 19, *SMALL)


def test_espnet_modules():
    """An ESP module: reduce to n = out/5, five branches dilated 1..16 (the first wider),
    hierarchical sums d2, d2+d4, ..., concatenated back to ``out``; the residual sum where the
    widths match, none in the down-sampling modules and the decoder's."""
    param = net_for("espnet", "deploy", input_size=SMALL)
    layers = {layer.name: layer for layer in param.layer}
    shapes = analyze(param)
    m = "encoder.level3.7"
    branches = [layers[f"{m}.d{d}"].convolution_param for d in (1, 2, 4, 8, 16)]
    assert [(p.num_output, list(p.dilation) or [1]) for p in branches] == \
        [(28, [1]), (25, [2]), (25, [4]), (25, [8]), (25, [16])]
    assert list(layers[f"{m}.add4"].bottom) == [f"{m}.add3", f"{m}.d16"]
    assert list(layers[f"{m}.cat"].bottom) == [f"{m}.d1", f"{m}.d2", f"{m}.add2", f"{m}.add3", f"{m}.add4"]
    assert list(layers[f"{m}.sum"].bottom) == ["encoder.level3.6.bn/bn", f"{m}.cat"]
    for plain in ("encoder.level2_0", "encoder.level3_0", "combine_l2_l3.1"):
        assert f"{plain}.sum" not in layers and f"{plain}.cat" in layers
    assert layers["encoder.level2_0.c1"].convolution_param.stride == [2]
    assert len([n for n in layers if n.startswith("encoder.level3.") and n.endswith(".cat")]) == 8
    assert shapes.layer("encoder.cat2").tops[0].shape == (1, 131, 16, 32)   # 64 + 64 + 3
    assert shapes.layer("classifier").tops[0].shape == (1, 19, *SMALL)
    assert [layers[n].type for n in ("up_l3", "up_l2", "classifier")] == ["Deconvolution"] * 3


@pytest.mark.parametrize("size", [(64, 128), (360, 640)])
def test_espnet_input_projection_is_floor_pooling(size):
    """PyTorch's 3x3/2 average pooling (pad 1) rounds down, Caffe's up: the pooled image is
    cut to the map it joins, so even and odd sizes line up."""
    shapes = analyze(net_for("espnet", "deploy", input_size=size))
    h, w = size
    assert shapes.layer("encoder.sample1").tops[0].shape == (1, 3, h // 2, w // 2)
    assert shapes.layer("encoder.sample2").tops[0].shape == (1, 3, h // 4, w // 4)
    pooled = shapes.layer("encoder.sample1/pool").tops[0].shape[2:]
    assert pooled == tuple(pool_output_size(s, 3, 1, 2) for s in size)


def test_espnet_sizes_must_be_multiples_of_8():
    with pytest.raises(ZooSpecError, match=r"multiple of 8"):
        net_for("espnet", "deploy", input_size=(100, 200))


def test_espnet_merged_keeps_scales_only_where_nothing_folds():
    """BatchNorm after a Concat or a sum has no convolution to fold into: the merged form keeps
    it as one Scale (its affine map), every other BatchNorm is folded away."""
    bn_form = net_for("espnet", "deploy", input_size=SMALL)
    merged = net_for("espnet", "deploy_mergebn", input_size=SMALL)
    producers = {top: layer.type for layer in merged.layer for top in layer.top}
    scales = [layer for layer in merged.layer if layer.type == "Scale"]
    assert scales and {producers[layer.bottom[0]] for layer in scales} <= {"Concat", "Eltwise"}
    batch_norms = sum(layer.type == "BatchNorm" for layer in bn_form.layer)
    assert batch_norms == len(scales) + len(merge_net(bn_form)[1])


@pytest.mark.parametrize("name", ["pspnet101", "deeplabv2"])
def test_merged_form_is_merge_bn_of_the_bn_form(name):
    assert_merged_form_is_merge_bn(name, SMALL)


@pytest.mark.parametrize("name", NETS)
def test_named_and_forms_agree(name):
    model = load_model(name)
    assert model.is_zoo and model.is_segmentation and name in zoo_names()
    assert default_forms(name) == ("deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn")
    results = {form: analyze(net_for(name, form, input_size=SMALL), phase="TRAIN" if "caffetime" in form else "TEST")
               for form in default_forms(name)}
    assert len({r.macs for r in results.values()}) == 1
    assert results["deploy"].params == results["caffetime"].params
    assert "BatchNorm" not in {l.type for l in net_for(name, "deploy_mergebn", input_size=SMALL).layer}
    deploy = results["deploy"]
    assert [l.name for l in deploy.layers if l.type in ("Softmax", "ArgMax")] == ["prob", "pred"]
    assert deploy.layer("pred").tops[0].shape == (1, 1, *SMALL)
    assert not [l for l in results["caffetime"].layers if l.type in ("Softmax", "ArgMax")]


def test_resnet_options_keep_the_classification_nets():
    """The dilation / stride / name options default to what resnet18 and resnet50 always
    were: spelling the defaults out builds the same net."""
    net = load_model("resnet50").net
    arch = dict(net.architecture, strides=[1, 2, 2, 2], dilations=[1, 1, 1, 1], names="msra")
    spelled = build_net(zoo_net({"name": "resnet50", "family": "resnet", "num_classes": 1000,
                                 "input": "224x224", "architecture": arch}, "x.yaml"))
    assert spelled == build_net(net)
    with pytest.raises(ZooSpecError, match="one value per stage"):
        build_net(zoo_net({"name": "r", "family": "resnet", "num_classes": 10, "input": "64x64",
                           "architecture": dict(arch, dilations=[1, 2])}, "r.yaml"))
    basic = dict(load_model("resnet18").net.architecture, names="psp")
    with pytest.raises(ZooSpecError, match="psp names bottleneck"):
        zoo_net({"name": "r", "family": "resnet", "num_classes": 10, "input": "64x64",
                 "architecture": basic}, "r.yaml")


# ----------------------------------------------------------------------------- in Caffe

@pytest.mark.parametrize("form", ["deploy", "deploy_mergebn"])
@pytest.mark.parametrize("name", NETS)
def test_runs_forward_in_caffe(caffe, name, form):
    """Random weights (Caffe's fillers; BN statistics zero), every blob shaped as the
    analysis says, the heads a distribution and its arg-max at the input's size."""
    param = net_for(name, form, input_size=SMALL)
    missing = {l.type for l in param.layer} - set(caffe.layer_type_list())
    assert not missing, f"our Caffe has no {', '.join(sorted(missing))} layer"
    net = load_net(caffe, param, "TEST")
    assert_shapes_as_analysed(net, param)
    run_random(net)
    prob = net.blobs["prob"].data
    assert np.isfinite(prob).all() and np.allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    assert net.blobs["pred"].data.shape == (1, 1, *SMALL)


@pytest.mark.parametrize("name,form", [("espnet", "deploy"), ("espnet", "deploy_mergebn"),
                                       ("pspnet101", "deploy"), ("deeplabv2", "deploy_mergebn")])
def test_to_onnx_check(caffe, name, form, tmp_path, capsys):
    """`python -m tools.to_onnx NET --check`: ONNX Runtime computes every blob Caffe computes
    (random weights) -- Interp, the cut average pooling, PReLU and the Deconvolutions too."""
    main = importlib.import_module("tools.to_onnx").main
    proto = tmp_path / "net.prototxt"
    proto.write_text(text_format.MessageToString(net_for(name, form, input_size=SMALL)))
    code = main([str(proto), "--out", str(tmp_path / "net.onnx"), "--check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "check passed" in out
