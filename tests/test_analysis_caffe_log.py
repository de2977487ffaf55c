"""Acceptance: our analysis reproduces what Caffe itself printed while setting up the
merged-BN DF1-Seg net for `caffe time` (TRAIN phase) at 1024x2048: the layer sequence
(Caffe's inserted Split layers included), every "Top shape" line and every running
"Memory required for data" value.  Likewise for the `caffe test` log of DF1."""
from __future__ import annotations

import re

import pytest

from prototxt_gen.analysis import analyze
from prototxt_gen.netio import read_net

LOG = "release/log/log_df1seg_mergebn_caffetime_titanx.txt"
_SETTING_UP = re.compile(r"\] Setting up (.+)$")
_TOP_SHAPE = re.compile(r"\] Top shape: (.*)$")
_MEMORY = re.compile(r"\] Memory required for data: (\d+)$")


def parse_setup_log(text: str) -> list[tuple[str, list[str], int]]:
    """[(layer name, ["1 32 512 1024 (16777216)", ...], running memory bytes)]."""
    layers = []
    for line in text.splitlines():
        if m := _SETTING_UP.search(line):
            layers.append([m.group(1), [], None])
        elif m := _TOP_SHAPE.search(line):
            layers[-1][1].append(m.group(1).strip())
        elif m := _MEMORY.search(line):
            layers[-1][2] = int(m.group(1))
    return [tuple(layer) for layer in layers]


@pytest.fixture(scope="module")
def log_path(reference_dir):
    return reference_dir / LOG


@pytest.fixture(scope="module")
def caffe_setup(log_path):
    layers = parse_setup_log(log_path.read_text())
    assert len(layers) > 100, "the log's setup section was not found"
    return layers


@pytest.fixture(scope="module")
def ours(log_path):
    return analyze(read_net(log_path), phase="TRAIN")


def test_layer_sequence_matches_caffe(caffe_setup, ours):
    assert [layer.name for layer in ours.layers] == [name for name, _, _ in caffe_setup]


def test_every_top_shape_matches_caffe(caffe_setup, ours):
    for (name, shapes, _), layer in zip(caffe_setup, ours.layers):
        assert [t.shape_string() for t in layer.tops] == shapes, name


def test_running_memory_matches_caffe(caffe_setup, ours):
    for (name, _, memory), layer in zip(caffe_setup, ours.layers):
        assert layer.memory_bytes == memory, name


def test_final_memory_required_for_data(ours):
    assert ours.memory_bytes == 887289856  # the log's last "Memory required for data"


def test_caffe_test_log_of_df1(reference_dir):
    """Second log: `caffe test` of DF1 (TEST phase, ImageData batch 100, crop 224), with
    Accuracy's scalar tops ("Top shape: (1)") and the label's Split."""
    path = reference_dir / "release/log/log_df1_val.txt"
    caffe = parse_setup_log(path.read_text())
    ours = analyze(read_net(path), phase="TEST")
    assert [layer.name for layer in ours.layers] == [name for name, _, _ in caffe]
    for (name, shapes, memory), layer in zip(caffe, ours.layers):
        assert [t.shape_string() for t in layer.tops] == shapes, name
        assert layer.memory_bytes == memory, name
    assert ours.memory_bytes == 2570417208
    assert ours.layer("label_data_1_split").inserted


def test_split_layers_are_marked_inserted(ours):
    split = ours.layer("conv2_conv2/relu_0_split")
    assert split.inserted and split.type == "Split"
    assert [t.name for t in split.tops] == ["conv2_conv2/relu_0_split_0", "conv2_conv2/relu_0_split_1"]
    assert not ours.layer("conv2").inserted


def test_released_val_prototxt_agrees_with_the_log(reference_dir, ours):
    # The released merged-BN validation net (ImageData, TEST phase) at the timed size has
    # the same shapes as the caffe-time net for every layer the two share, plus the
    # Softmax/ArgMax heads the TRAIN-phase caffe-time net drops.
    val = analyze(read_net(reference_dir / "release/prototxt/df1seg_mergebn.prototxt"),
                  input_shape=(1, 3, 1024, 2048), phase="TEST")
    timed = {layer.name: [t.shape for t in layer.tops] for layer in ours.layers}
    shared = [layer for layer in val.layers if layer.name in timed and layer.type != "ImageData"]
    assert len(shared) > 100
    for layer in shared:
        assert [t.shape for t in layer.tops] == timed[layer.name], layer.name
    assert val.layer("pred").tops[0].shape == (1, 1, 1024, 2048)
    assert val.layer("pred_d8").tops[0].shape == (1, 1, 128, 256)


def test_log_net_is_already_filtered_for_train(log_path):
    # The printed net lost its TEST-only layers, so asking for TEST must fail clearly.
    from prototxt_gen.analysis import AnalysisError
    with pytest.raises(AnalysisError, match="psp.concat.*unknown bottom blob 'psp.pool1.interp'"):
        analyze(read_net(log_path), phase="TEST")
