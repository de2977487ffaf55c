"""The analysis on every form the generator writes, for every named model: each form can
be set up in the phase it is meant for, and forms that share weights agree on them."""
from __future__ import annotations

import pytest

from prototxt_gen.analysis import analyze
from prototxt_gen.models import load_model, model_names

generate = pytest.importorskip("prototxt_gen.generate", reason="the generator has not landed yet")

SEG_SIZE = (1024, 2048)
CLS_SIZE = (224, 224)


def analyses(name: str) -> dict[str, object]:
    model = load_model(name)
    seg = model.is_segmentation
    h, w = SEG_SIZE if seg else CLS_SIZE
    out = {}
    for form in generate.FORMS:
        net = generate.net_for(name, form, input_size=(h, w))
        if form == "train":
            # TRAIN data come from a database / Python layer: we say how big a batch is.
            crop = (1024, 1024) if seg else CLS_SIZE
            labels = {"label": (2, 1) + crop} if seg else {}
            out["train/TRAIN"] = analyze(net, input_shape=(2, 3) + crop, phase="TRAIN", top_shapes=labels)
            # BVLC's ImageData gives one label per image; a segmentation loss needs a label
            # map, so say its shape.
            out["train/TEST"] = analyze(net, input_shape=(1, 3, h, w), phase="TEST",
                                        top_shapes={"label": (1, 1, h, w)} if seg else {})
        elif form.startswith("caffetime"):
            out[form] = analyze(net, phase="TRAIN")  # what `caffe time` builds
        else:
            # val forms read images (batch 100 for classification): analyse one image
            out[form] = analyze(net, input_shape=(1, 3, h, w) if form.startswith("val") else None)
    return out


@pytest.mark.parametrize("name", model_names())
def test_every_form_sets_up_and_forms_agree(name):
    model = load_model(name)
    result = analyses(name)
    bn = {form: result[form].params for form in ("val", "deploy")}
    merged = {form: result[form].params for form in ("val_mergebn", "deploy_mergebn", "caffetime_mergebn")}
    assert len(set(bn.values())) == 1, bn
    assert len(set(merged.values())) == 1, merged
    assert result["caffetime"].params == result["deploy"].params
    # Same weights at the same input size: same multiply-accumulates.
    macs = {form: result[form].macs for form in ("val", "val_mergebn", "deploy", "deploy_mergebn",
                                                  "caffetime", "caffetime_mergebn")}
    assert len(set(macs.values())) == 1, macs
    if model.is_segmentation:
        deploy = result["deploy"]
        score = deploy.layer("Decoder_score").tops[0].shape
        assert score == (1, model.net.num_classes, 128, 256)
        names = [layer.name for layer in deploy.layers]
        if model.net.d8:
            assert "Decoder_score.up8" not in names
        else:
            assert deploy.layer("Decoder_score.up8").tops[0].shape == (1, model.net.num_classes) + SEG_SIZE
    else:
        assert result["deploy"].layer("fc").tops[0].shape == (1, 1000)
    assert result["train/TRAIN"].params >= result["deploy"].params


@pytest.mark.parametrize("name, model, tolerance", [("df1", "DF1", 0.01), ("df2", "DF2", 0.01),
                                                    ("df2a", "DF2A", 0.05)])
def test_generated_backbones_have_the_papers_flops(paper_tables, name, model, tolerance):
    """Table 1's FLOPs are conv/FC multiply-accumulates at 224x224 (DF2A's is 3% above)."""
    flops = {row["model"]: row["flops"] for row in paper_tables["table1_tx2_backbones"]}
    text = flops[model]
    expected = float(text[:-1]) * (1e9 if text.endswith("G") else 1e6)
    result = analyze(generate.net_for(name, "deploy_mergebn", input_size=CLS_SIZE))
    assert result.macs == pytest.approx(expected, rel=tolerance)
