"""Recovering the encoding and WC setting from release-format prototxts."""
from __future__ import annotations

import pytest

from prototxt_gen.models import load_model, model_names
from prototxt_gen.netio import read_net
from prototxt_gen.reverse import RecoveryError, recover_encoding

RELEASED = {"df1.prototxt": "df1", "df2a.prototxt": "df2a", "df1seg.prototxt": "df1seg",
            "df1seg_mergebn.prototxt": "df1seg"}


@pytest.mark.parametrize("file, model", sorted(RELEASED.items()))
def test_released_files_give_their_models(reference_dir, file, model):
    recovered = recover_encoding(read_net(reference_dir / "release/prototxt" / file))
    assert recovered == load_model(model).net
    assert str(recovered) == str(load_model(model).net)


def test_df1seg_wc_uses_k_for_the_class_count(reference_dir):
    seg = recover_encoding(read_net(reference_dir / "release/prototxt/df1seg.prototxt"))
    assert seg.wc == ("K", 32, 128) and seg.num_classes == 19 and not seg.d8


def test_d8_form_has_no_final_upsampling(reference_dir):
    net = read_net(reference_dir / "release/prototxt/df1seg.prototxt")
    keep = [layer for layer in net.layer if layer.name not in ("Decoder_score.up8", "prob", "pred")]
    del net.layer[:]
    net.layer.extend(keep)
    assert recover_encoding(net) == load_model("df1seg_d8").net


@pytest.mark.parametrize("drop, message", [
    ("conv2", "no stem convolution 'conv2'"),
    ("res3.2.conv2", "res3.2: convolutions conv\\[1\\] are neither"),
    ("Decoder_wc4", "decoder is missing Decoder_wc4"),
])
def test_broken_nets_say_what_is_missing(reference_dir, drop, message):
    net = read_net(reference_dir / "release/prototxt/df1seg.prototxt")
    keep = [layer for layer in net.layer if layer.name != drop]
    del net.layer[:]
    net.layer.extend(keep)
    with pytest.raises(RecoveryError, match=message):
        recover_encoding(net)


def test_round_trip_through_the_generator():
    """Every named model, generated in each form, reads back as the same encoding."""
    generate = pytest.importorskip("prototxt_gen.generate", reason="the generator has not landed yet")
    for model in model_names():
        for form in ("val", "deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn"):
            net = generate.net_for(model, form)
            assert recover_encoding(net) == load_model(model).net, (model, form)
