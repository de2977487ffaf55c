"""The generator against the authors' release and against its own invariants."""
from dataclasses import replace

import pytest
from hypothesis import given, settings

from prototxt_gen import caffe_pb2
from prototxt_gen.__main__ import main as cli
from prototxt_gen.generate import FORMS, block_net, net_for, to_text
from prototxt_gen.models import load_model, model_names
from prototxt_gen.reverse import encoding_of
from tests.test_encoding import backbones
from prototxt_gen.encoding import SegmentationNet, BasicBlock, BottleneckBlock
from prototxt_gen.compare import compare_nets
from prototxt_gen.netio import read_net as load_net


@pytest.mark.parametrize("release_file, model, form", [
    ("df1.prototxt", "df1", "val"),
    ("df2a.prototxt", "df2a", "val"),
    ("df1seg.prototxt", "df1seg", "val"),
    ("df1seg_mergebn.prototxt", "df1seg", "val_mergebn"),
])
def test_validation_nets_equal_the_release(reference_dir, release_file, model, form):
    released = load_net(reference_dir / "release" / "prototxt" / release_file)
    assert compare_nets(released, net_for(model, form)) == []


def test_caffetime_form_equals_the_net_the_authors_timed(reference_dir):
    """The log prints the net `caffe time` ran (TRAIN phase): ours, phase-filtered, is the same."""
    from prototxt_gen.netio import net_from_log
    log = reference_dir / "release" / "log" / "log_df1seg_mergebn_caffetime_titanx.txt"
    timed = net_from_log(log.read_text())
    timed.ClearField("state")
    ours = net_for("df1seg", "caffetime_mergebn", input_size=(1024, 2048))
    kept = [l for l in ours.layer if all(rule.phase != caffe_pb2.TEST for rule in l.include)]
    del ours.layer[:]
    ours.layer.extend(kept)
    assert compare_nets(timed, ours) == []


def test_release_difference_is_reported(reference_dir):
    released = load_net(reference_dir / "release" / "prototxt" / "df1.prototxt")
    assert compare_nets(released, net_for("df2", "val")) != []


@pytest.mark.parametrize("name", model_names())
def test_every_form_of_every_named_model(name):
    model = load_model(name)
    for form in FORMS:
        net = net_for(name, form)
        types = [l.type for l in net.layer]
        # -d8 models train as their full-resolution model (they share its weights).
        expected = replace(model.net, d8=False) if model.is_segmentation and form == "train" else model.net
        assert encoding_of(net) == expected, form
        if form.endswith("mergebn"):
            assert "BatchNorm" not in types and "Scale" not in types
            assert all(l.convolution_param.bias_term for l in net.layer if l.type == "Convolution")
        else:
            assert types.count("BatchNorm") == types.count("Convolution")
        if form.startswith("caffetime"):
            assert not {"Softmax", "ArgMax", "SoftmaxWithLoss", "Accuracy"} & set(types)
            assert types[0] == "Input"
        if model.is_segmentation and form != "train":
            assert ("Decoder_score.up8" in [l.name for l in net.layer]) != model.net.d8


def test_interp_sizes_follow_the_input_size():
    net = net_for("df1seg", "caffetime_mergebn", input_size=(360, 640))
    interps = [l for l in net.layer if l.type == "Interp"]
    assert len(interps) == 8 and {(l.interp_param.height, l.interp_param.width) for l in interps} == {(12, 20)}
    deploy = net_for("df1seg", "deploy", input_size=(512, 1024))
    interps = [l for l in deploy.layer if l.type == "Interp"]
    assert len(interps) == 4 and all(not l.include for l in interps)
    assert {(l.interp_param.height, l.interp_param.width) for l in interps} == {(16, 32)}
    pools = [l.pooling_param.kernel_size for l in deploy.layer if l.name.startswith("psp.pool") and l.type == "Pooling"]
    assert pools == [32, 16, 8, 4]  # windows follow the 1024x1024 training crop


def test_train_form_has_losses_and_both_data_phases():
    net = net_for("df1", "train", aux_heads=True)
    losses = [l for l in net.layer if l.type == "SoftmaxWithLoss"]
    assert sorted(l.name for l in losses) == ["aux3/loss", "aux4/loss", "loss"]
    phases = sorted(l.include[0].phase for l in net.layer if l.name == "data")
    assert phases == [caffe_pb2.TRAIN, caffe_pb2.TEST]
    seg = net_for("df1seg_d8", "train")
    loss = next(l for l in seg.layer if l.type == "SoftmaxWithLoss")
    assert list(loss.bottom) == ["Decoder_score.up8", "label"] and loss.loss_param.ignore_label == 255


@settings(max_examples=40, deadline=None)
@given(backbones())
def test_reverse_recovers_any_encoding(backbone):
    assert encoding_of(net_for(f"{backbone}", "deploy_mergebn", input_size=(64, 64))) == backbone
    seg = SegmentationNet(backbone, ("K", 32, 128))
    assert encoding_of(net_for(str(seg), "val")) == seg


def test_block_net_profiles_one_block():
    net = block_net(BottleneckBlock(128, 512), 256, (28, 28), stride=2, projection=True)
    assert [l.name for l in net.layer if l.type == "Convolution"] == [
        "block.conv1", "block.conv2", "block.conv3", "block.skipConv"]
    assert net.layer[0].input_param.shape[0].dim == [1, 256, 28, 28]


def test_cli_writes_every_form_and_release_set(tmp_path):
    assert cli(["df1seg", "--out", str(tmp_path / "m")]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        ["df1seg.prototxt", "df1seg_mergebn.prototxt", "df1seg_train.prototxt", "df1seg_deploy.prototxt",
         "df1seg_deploy_mergebn.prototxt", "df1seg_caffetime.prototxt", "df1seg_caffetime_mergebn.prototxt"])
    assert cli(["--release-set", "--out", str(tmp_path / "r")]) == 0
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names == {"df1.prototxt", "df2.prototxt", "df2a.prototxt", "df1_mergebn.prototxt", "df2_mergebn.prototxt",
                     "df2a_mergebn.prototxt", "df1seg.prototxt", "df1seg_mergebn.prototxt", "df2seg1.prototxt",
                     "df2seg1_mergebn.prototxt", "df2seg2.prototxt", "df2seg2_mergebn.prototxt",
                     "df-lite_seg_mergebn.prototxt"}


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert cli(["[(64,96),(128),(256)]", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stage 3 (res2), block 2: width 96 not allowed" in err
    assert cli(["df9", "--out", str(tmp_path)]) == 2
    assert "unknown model 'df9'" in capsys.readouterr().err
