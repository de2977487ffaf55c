"""The lead's encoding recovery (prototxt_gen.reverse) on the released files, as the
analysis CLI uses it."""
from __future__ import annotations

import pytest

from prototxt_gen.models import load_model
from prototxt_gen.netio import read_net
from prototxt_gen.reverse import encoding_of

RELEASED = {"df1.prototxt": "df1", "df2a.prototxt": "df2a", "df1seg.prototxt": "df1seg",
            "df1seg_mergebn.prototxt": "df1seg"}


@pytest.mark.parametrize("file, model", sorted(RELEASED.items()))
def test_released_files_give_their_models(reference_dir, file, model):
    recovered = encoding_of(read_net(reference_dir / "release/prototxt" / file))
    assert recovered == load_model(model).net


def test_caffe_time_log_gives_df1seg(reference_dir):
    net = read_net(reference_dir / "release/log/log_df1seg_mergebn_caffetime_titanx.txt")
    assert encoding_of(net) == load_model("df1seg").net


def test_d8_form_has_no_final_upsampling(reference_dir):
    net = read_net(reference_dir / "release/prototxt/df1seg.prototxt")
    keep = [layer for layer in net.layer if layer.name not in ("Decoder_score.up8", "prob", "pred")]
    del net.layer[:]
    net.layer.extend(keep)
    assert encoding_of(net) == load_model("df1seg_d8").net
