"""Shape rules: property tests against brute-force window enumeration, and Caffe's
documented special cases."""
from __future__ import annotations


import pytest
from google.protobuf import text_format
from hypothesis import assume, given, settings, strategies as st

from prototxt_gen import caffe_pb2
from prototxt_gen.analysis import AnalysisError, analyze
from prototxt_gen.shapes import (conv_output_size, deconv_output_size, interp_output_size,
                                 pool_output_size)

sizes = st.integers(1, 300)
kernels = st.integers(1, 12)
strides = st.integers(1, 8)
dilations = st.integers(1, 4)


def net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


# --------------------------------------------------------------------------- convolution

def brute_conv(size, kernel, pad, stride, dilation):
    """Window starts -pad, -pad+stride, ... whose whole extent lies in the padded input."""
    extent = dilation * (kernel - 1) + 1
    return sum(1 for start in range(-pad, size + pad, stride) if start + extent <= size + pad)


@settings(max_examples=400, deadline=None)
@given(sizes, kernels, st.integers(0, 6), strides, dilations)
def test_conv_output_matches_window_enumeration(size, kernel, pad, stride, dilation):
    extent = dilation * (kernel - 1) + 1
    assume(size + 2 * pad >= extent)  # otherwise Caffe's C++ division gives 0 or less
    assert conv_output_size(size, kernel, pad, stride, dilation) == brute_conv(size, kernel, pad, stride, dilation)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200), kernels, st.integers(0, 6), strides, dilations)
def test_deconv_inverts_conv(size, kernel, pad, stride, dilation):
    out = deconv_output_size(size, kernel, pad, stride, dilation)
    assume(out > 0)
    assert conv_output_size(out, kernel, pad, stride, dilation) == size


def test_conv_uses_cpp_truncating_division():
    # (2 + 0 - 4) / 2 = -1 in C++ (Python's floor would give -1 too); (3 - 4) / 2 = 0 in C++.
    assert conv_output_size(3, 4, 0, 2) == 1
    assert conv_output_size(2, 4, 0, 2) == 0


# --------------------------------------------------------------------------- pooling

def brute_pool(size, kernel, pad, stride):
    """Caffe's pooling windows: from -pad, step stride, until the padded input
    [-pad, size + pad) is covered; then, with padding, drop a last window that would
    start in the trailing padding."""
    starts = [-pad]
    while starts[-1] + kernel < size + pad:
        starts.append(starts[-1] + stride)
    if pad and starts[-1] >= size:
        starts.pop()
    return len(starts)


@settings(max_examples=500, deadline=None)
@given(sizes, kernels, st.integers(0, 5), strides)
def test_pool_output_matches_window_enumeration(size, kernel, pad, stride):
    assume(pad < kernel and size + 2 * pad >= kernel)
    assert pool_output_size(size, kernel, pad, stride) == brute_pool(size, kernel, pad, stride)


@settings(max_examples=300, deadline=None)
@given(sizes, kernels, st.integers(0, 5), strides)
def test_pool_windows_cover_the_image_and_start_inside(size, kernel, pad, stride):
    assume(pad < kernel and size + 2 * pad >= kernel and kernel >= stride)
    out = pool_output_size(size, kernel, pad, stride)
    last_start = (out - 1) * stride - pad
    assert last_start < size or pad == 0           # Caffe's CHECK_LT after the clip
    assert last_start + kernel >= size              # no input pixel is left out


def test_pool_ceil_and_clip_examples():
    assert pool_output_size(112, 3, 0, 2) == 56      # ceil((112-3)/2)+1 = 56
    assert pool_output_size(6, 2, 1, 2) == 4         # ceil(6/2)+1 = 4: last starts at 5 < 7
    assert pool_output_size(4, 3, 1, 3) == 2         # ceil(3/3)+1 = 2, no clip
    assert pool_output_size(5, 2, 1, 2) == 3         # ceil(5/2)+1 = 4, last starts at 5 >= 5: clipped
    assert pool_output_size(1025 // 2 + 1, 3, 1, 2) == 257


# --------------------------------------------------------------------------- Interp

def interp_param(**fields) -> caffe_pb2.InterpParameter:
    return caffe_pb2.InterpParameter(**fields)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 500), st.integers(1, 9), st.integers(-3, 0), st.integers(-3, 0))
def test_interp_shrink_samples_every_factor_th_pixel(size, factor, pad_beg, pad_end):
    effective = size + pad_beg + pad_end
    assume(effective > 0)
    p = interp_param(shrink_factor=factor, pad_beg=pad_beg, pad_end=pad_end)
    assert interp_output_size(size, p, None) == len(range(0, effective, factor))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.integers(1, 9))
def test_interp_zoom_inserts_factor_minus_one_points_between_pixels(size, factor):
    p = interp_param(zoom_factor=factor)
    grid = {i / factor for i in range(0, (size - 1) * factor + 1)}  # 0 .. size-1 step 1/zoom
    assert interp_output_size(size, p, None) == len(grid)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 6), st.integers(1, 6))
def test_interp_shrink_then_zoom(size, shrink, zoom):
    both = interp_output_size(size, interp_param(shrink_factor=shrink, zoom_factor=zoom), None)
    shrunk = interp_output_size(size, interp_param(shrink_factor=shrink), None)
    assert both == interp_output_size(shrunk, interp_param(zoom_factor=zoom), None)


INTERP = '''input: "data" input_shape { dim: 1 dim: 2 dim: 33 dim: 65 }
layer { name: "i" type: "Interp" bottom: "data" top: "i" interp_param { %s } }'''


@pytest.mark.parametrize("params, hw", [
    ("height: 10 width: 20", (10, 20)),
    ("zoom_factor: 8", (257, 513)),                      # PSPNet's 33x65 -> 257x513
    ("shrink_factor: 2", (17, 33)),
    ("shrink_factor: 2 height: 5 width: 5", (17, 33)),   # a lone shrink wins over height/width
    ("zoom_factor: 2 height: 5 width: 5", (65, 129)),
    ("zoom_factor: 2 shrink_factor: 4 height: 5 width: 5", (5, 5)),  # height/width beat both
    ("zoom_factor: 2 shrink_factor: 4", (17, 33)),       # (33-1)/4+1 = 9 -> 9+8 = 17
    ("zoom_factor: 1 pad_beg: -1 pad_end: -1", (31, 63)),
])
def test_interp_branches(params, hw):
    result = analyze(net(INTERP % params))
    assert result.layer("i").tops[0].shape == (1, 2) + hw


def test_interp_positive_pad_is_rejected():
    with pytest.raises(AnalysisError, match="'i' \\(type Interp\\).*non-positive padding"):
        analyze(net(INTERP % "zoom_factor: 2 pad_beg: 1"))


# --------------------------------------------------------------------------- layers in nets

SMALL = '''
input: "data" input_dim: 2 input_dim: 8 input_dim: 17 input_dim: 23
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
  convolution_param { num_output: 12 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 stride_h: 2 stride_w: 1 group: 4 } }
layer { name: "d" type: "Convolution" bottom: "c" top: "d"
  convolution_param { num_output: 6 kernel_size: 3 kernel_size: 1 dilation: 2 pad: 2 pad: 0 bias_term: false } }
layer { name: "p" type: "Pooling" bottom: "d" top: "p" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "g" type: "Pooling" bottom: "p" top: "g" pooling_param { pool: AVE global_pooling: true } }
layer { name: "up" type: "Deconvolution" bottom: "p" top: "up"
  convolution_param { num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 6 bias_term: false } }
layer { name: "fc" type: "InnerProduct" bottom: "g" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
layer { name: "am" type: "ArgMax" bottom: "prob" top: "am" }
layer { name: "am1" type: "ArgMax" bottom: "up" top: "am1" argmax_param { axis: 1 top_k: 2 } }
layer { name: "cat" type: "Concat" bottom: "up" bottom: "up" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "cat" top: "sum" }
layer { name: "flat" type: "Flatten" bottom: "sum" top: "flat" }
layer { name: "r" type: "Reshape" bottom: "flat" top: "r" reshape_param { shape { dim: 0 dim: -1 dim: 4 } } }
layer { name: "s" type: "Slice" bottom: "r" top: "s1" top: "s2" slice_param { axis: 2 slice_point: 1 } }
'''


@pytest.fixture(scope="module")
def small():
    return analyze(net(SMALL))


def test_old_style_input_becomes_an_input_layer(small):
    first = small.layers[0]
    assert (first.name, first.type, first.tops[0].name, first.tops[0].shape) == ("input", "Input", "data", (2, 8, 17, 23))


@pytest.mark.parametrize("layer, shapes", [
    ("c", [(2, 12, 9, 23)]),          # h: (17+2-3)/2+1 = 9, w: (23+4-5)/1+1 = 23
    ("d", [(2, 6, 9, 23)]),           # dilated 3x1: extent 5, pad 2 -> 9; w 23
    ("p", [(2, 6, 5, 12)]),           # ceil((9+2-3)/2)+1 = 5, ceil((23+2-3)/2)+1 = 12
    ("g", [(2, 6, 1, 1)]),
    ("up", [(2, 6, 10, 24)]),         # 2*(5-1)+4-2 = 10, 2*(12-1)+4-2 = 24
    ("fc", [(2, 10)]),
    ("prob", [(2, 10)]),
    ("am", [(2, 1, 1)]),              # no axis: N x 1 x top_k
    ("am1", [(2, 2, 10, 24)]),
    ("cat", [(2, 12, 10, 24)]),
    ("sum", [(2, 12, 10, 24)]),
    ("flat", [(2, 2880)]),
    ("r", [(2, 720, 4)]),
    ("s", [(2, 720, 1), (2, 720, 3)]),
])
def test_layer_shapes(small, layer, shapes):
    assert [t.shape for t in small.layer(layer).tops] == shapes


def test_params_and_macs(small):
    c = small.layer("c")
    assert c.params == 12 * (8 // 4) * 3 * 5 + 12
    assert c.macs == 2 * 12 * 9 * 23 * (8 // 4) * 3 * 5
    d = small.layer("d")
    assert d.params == 6 * 12 * 3 * 1 and d.macs == 2 * 6 * 9 * 23 * 12 * 3
    up = small.layer("up")  # deconvolution: every input position scatters a kernel
    assert up.params == 6 * 1 * 16 and up.macs == 2 * 5 * 12 * 6 * 1 * 16
    fc = small.layer("fc")
    assert fc.params == 10 * 6 + 10 and fc.macs == 2 * 6 * 10
    assert small.params == sum(layer.params for layer in small.layers)
    assert small.layer("p").macs == 0 and small.layer("sum").params == 0


def test_memory_counts_every_top_including_splits_and_in_place(small):
    expected = 4 * sum(t.count for layer in small.layers for t in layer.tops)
    assert small.memory_bytes == expected
    # "p" feeds "g" and "up"; "up" feeds "am1" and, twice, "cat"; "cat" feeds "sum" twice:
    # Caffe inserts a Split layer after each, with one top per consumer.
    splits = {layer.name: len(layer.tops) for layer in small.layers if layer.inserted}
    assert splits == {"p_p_0_split": 2, "up_up_0_split": 3, "cat_cat_0_split": 2}
    assert small.layer("am1").bottoms == ["up_up_0_split_0"]
    assert small.layer("cat").bottoms == ["up_up_0_split_1", "up_up_0_split_2"]


BN_NET = '''
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 6 dim: 6 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
layer { name: "sc" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }
layer { name: "drop" type: "Dropout" bottom: "data" top: "data" include { phase: TRAIN } }
layer { name: "lbl" type: "Input" top: "label" input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" include { phase: TRAIN } }
layer { name: "acc" type: "Accuracy" bottom: "data" bottom: "label" top: "acc" top: "per_class" exclude { phase: TRAIN } }
'''


def test_in_place_layers_and_phase_filtering():
    test = analyze(net(BN_NET), phase="TEST")
    assert [layer.name for layer in test.layers] == ["data", "bn", "sc", "relu", "lbl", "acc"]
    assert test.layer("bn").params == 2 * 4 + 1 and test.layer("sc").params == 2 * 4
    assert [t.shape for t in test.layer("acc").tops] == [(), (4,)]
    train = analyze(net(BN_NET), phase="TRAIN")
    loss = train.layer("loss")
    assert loss.tops[0].shape == () and loss.tops[0].shape_string() == "(1)"  # anonymous loss top
    # in-place tops count again, as Caffe counts them: 5 x 144 data + 36 label + 1 loss
    assert train.memory_bytes == 4 * (5 * 144 + 36 + 1)


def test_input_override_replaces_the_data_size():
    result = analyze(net(SMALL), input_shape=(1, 8, 33, 47))
    assert result.layers[0].tops[0].shape == (1, 8, 33, 47)
    assert result.layer("c").tops[0].shape == (1, 12, 17, 47)


def test_image_data_sizes():
    layer = '''layer { name: "data" type: "ImageData" top: "data" top: "label"
      transform_param { %s } image_data_param { source: "x" batch_size: 5 %s } }'''
    assert analyze(net(layer % ("crop_size: 224", ""))).layers[0].tops[0].shape == (5, 3, 224, 224)
    assert analyze(net(layer % ("crop_h: 512 crop_w: 1024", ""))).layers[0].tops[1].shape == (5,)
    assert analyze(net(layer % ("", "new_height: 64 new_width: 32 is_color: false"))).layers[0].tops[0].shape == (5, 1, 64, 32)
    with pytest.raises(AnalysisError, match="'data' \\(type ImageData\\).*--input"):
        analyze(net(layer % ("", "")))
    assert analyze(net(layer % ("", "")), input_shape=(1, 3, 8, 8)).layers[0].tops[1].shape == (1,)


def test_loss_checks_labels_against_predictions():
    bad = BN_NET.replace("dim: 1 dim: 1 dim: 6 dim: 6", "dim: 1")
    with pytest.raises(AnalysisError, match="'loss' \\(type SoftmaxWithLoss\\): number of labels \\(1\\) "
                       "must match number of predictions \\(36\\)"):
        analyze(net(bad), phase="TRAIN")


@pytest.mark.parametrize("text, message", [
    ('layer { name: "x" type: "Frobnicate" }', "layer 'x' \\(type Frobnicate\\): unknown layer type 'Frobnicate'"),
    ('layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }', "layer 'r' \\(type ReLU\\): unknown bottom blob 'nope'"),
    (INTERP.split("\n")[0] + '\nlayer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 3 kernel_size: 3 group: 3 } }',
     "layer 'c' \\(type Convolution\\): number of input channels \\(2\\) must be a multiple of group \\(3\\)"),
    (INTERP.split("\n")[0] + '\nlayer { name: "e" type: "Eltwise" bottom: "data" bottom: "i" top: "e" }\n'
     'layer { name: "i" type: "ReLU" bottom: "data" top: "i" }', "unknown bottom blob 'i'"),
    (INTERP.split("\n")[0] + '\nlayer { name: "a" type: "ReLU" bottom: "data" top: "a" }\n'
     'layer { name: "b" type: "ReLU" bottom: "data" top: "a" }', "'a' produced by multiple sources"),
])
def test_errors_name_the_layer_and_the_problem(text, message):
    with pytest.raises(AnalysisError, match=message):
        analyze(net(text))


def test_paper_flops_of_df1_and_df2a(reference_dir, paper_tables):
    """The paper's FLOPs column counts conv/FC multiply-accumulates at 224x224."""
    from prototxt_gen.netio import read_net
    flops = {row["model"]: row["flops"] for row in paper_tables["table1_tx2_backbones"]}
    def giga(text):
        return float(text[:-1]) * (1e9 if text.endswith("G") else 1e6)
    for name, model, tolerance in [("df1", "DF1", 0.01), ("df2a", "DF2A", 0.05)]:
        result = analyze(read_net(reference_dir / f"release/prototxt/{name}.prototxt"), input_shape=(1, 3, 224, 224))
        assert result.macs == pytest.approx(giga(flops[model]), rel=tolerance), name
        assert result.layer("fc").tops[0].shape == (1, 1000)
