import pytest
from hypothesis import given, strategies as st

from prototxt_gen.encoding import (WIDTH_CHOICES, Backbone, BasicBlock, BottleneckBlock, EncodingError,
                                   SegmentationNet, format_backbone, parse_backbone, parse_encoding)
from prototxt_gen.models import UnknownModelError, load_model, model_names


@st.composite
def backbones(draw):
    """Valid backbones: non-decreasing widths, any mix of basic and bottleneck blocks."""
    stages = []
    floor_out, floor_mid = WIDTH_CHOICES[0], WIDTH_CHOICES[0]
    for _ in range(3):
        stage = []
        for _ in range(draw(st.integers(1, 4))):
            outs = [w for w in WIDTH_CHOICES if w >= floor_out]
            out = draw(st.sampled_from(outs))
            mids = [w for w in WIDTH_CHOICES if floor_mid <= w <= out]
            if mids and draw(st.booleans()):
                mid = draw(st.sampled_from(mids))
                stage.append(BottleneckBlock(mid, out))
                floor_mid = mid
            else:
                stage.append(BasicBlock(out))
            floor_out = out
        stages.append(tuple(stage))
    return Backbone(tuple(stages))


@given(backbones())
def test_text_form_round_trips(backbone):
    assert parse_backbone(format_backbone(backbone)) == backbone


@given(backbones(), st.sampled_from(["K", 32, 64, 128, 256, 512]), st.booleans())
def test_segmentation_text_form_round_trips(backbone, c5, d8):
    net = SegmentationNet(backbone, ("K", 32, c5), d8=d8)
    assert parse_encoding(str(net)) == net


def test_paper_depths(paper_tables):
    archs = paper_tables["architectures"]
    for name in ("df1", "df2", "df2a"):
        assert load_model(name).net.depth == archs[name.upper()]["depth"]


def test_named_models_match_paper(paper_tables):
    archs = paper_tables["architectures"]
    for name, key in (("df1", "DF1"), ("df2", "DF2"), ("dflite", "DFlite")):
        stages = load_model(name).net.stages
        for s, stage_key in enumerate(("stage3", "stage4", "stage5")):
            assert [b.width for b in stages[s]] == archs[key][stage_key]
    df2a = load_model("df2a").net
    assert [[b.mid, b.out] for b in df2a.stages[1]] == archs["DF2A"]["stage4"]
    for model, spec in paper_tables["segmentation"].items():
        if model == "wc_choices":
            continue
        name = {"DF1-Seg": "df1seg", "DF2-Seg1": "df2seg1", "DF2-Seg2": "df2seg2", "DFlite-Seg": "dflite_seg"}[model]
        assert list(load_model(name).net.wc_widths) == spec["wc"]


@pytest.mark.parametrize("text, where", [
    ("[(64,96),(128),(256)]", "stage 3 (res2), block 2: width 96 not allowed"),
    ("[(128),(64),(256)]", "stage 4 (res3), block 1: width 64 narrower"),
    ("[(64),(),(256)]", "stage 4 (res3): empty stage"),
    ("[(64),(128/256,64/256),(256)]", "stage 4 (res3), block 2: mid width 64 narrower"),
    ("[(64),(128)]", "3 stages"),
    ("[(64),(128),(256)]:[K,48,128]", "C4 = 48 not allowed"),
    ("[(64),(128),(256)", "expected ']'"),
])
def test_impossible_encodings_name_the_problem(text, where):
    with pytest.raises(EncodingError, match=where.replace("(", r"\(").replace(")", r"\)")):
        parse_encoding(text)


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="unknown model 'df9'"):
        load_model("df9")
    assert {"df1", "df2", "df2a", "dflite", "df1seg", "df2seg1", "df2seg2", "dflite_seg"} <= set(model_names())
