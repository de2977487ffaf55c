"""tools.merge_bn: merged nets compute what the BatchNorm nets compute, in real Caffe, and
look like the authors' merged files.  Needs `make caffe` (a missing Caffe fails, never skips)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import net_for
from prototxt_gen.models import model_names
from tools.export.merge_bn import MergeError, merge_files, merge_net, read_caffemodel
from prototxt_gen.netio import read_net, write_net
from prototxt_gen.netprep import with_input_layer
from tools.export.pycaffe_net import load_net

REPO = Path(__file__).resolve().parent.parent
RELEASE_SEG_INPUT = {"data": (1, 3, 1024, 2048), "label": (1, 1, 1024, 2048)}


def randomize(caffe, param: caffe_pb2.NetParameter, path: Path, seed: int = 0):
    """Save a caffemodel for `param` with random weights and random BatchNorm statistics
    (stored, as Caffe does, multiplied by a random scale factor); return the live net."""
    net = load_net(caffe, param, "TEST")
    rng = np.random.default_rng(seed)
    types = {layer.name: layer.type for layer in param.layer}
    for name, blobs in net.params.items():
        kind = types[name]
        if kind == "BatchNorm":
            factor = rng.uniform(0.5, 3.0)
            blobs[0].data[...] = rng.normal(0, 0.5, blobs[0].data.shape) * factor
            blobs[1].data[...] = rng.uniform(0.5, 2.0, blobs[1].data.shape) * factor
            blobs[2].data[...] = factor
        elif kind == "Scale":
            blobs[0].data[...] = rng.uniform(0.5, 1.5, blobs[0].data.shape)
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.2, blobs[1].data.shape)
        elif kind in ("Convolution", "InnerProduct"):
            w = blobs[0].data
            blobs[0].data[...] = rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[1:])), w.shape)
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].data.shape)
    net.save(str(path))
    return net


def forward_with_switches_of(merged, original, max_share_flipped: float = 1e-3):
    """Run `merged` forward, but with the max-pooling switches (the arg-max masks that
    SegNet's and ENet's Upsample layers route values by) of `original`.  Two window values
    within rounding of each other are a tie that the BN net and the merged net may break
    differently (seen on AMD EPYC's OpenBLAS kernels: 1 of 16,384 switches of SegNet's
    pool4); the value then lands one pixel over, which is no merge error but is far above
    1e-4 downstream.  Flips must stay rare, or the inputs of the pooling already differ."""
    names = list(merged._layer_names)
    start = names[0]
    for index, name in enumerate(names):
        tops = merged.top_names[name]
        if merged.layers[index].type != "Pooling" or len(tops) < 2:
            continue
        merged.forward(start=start, end=name)
        mask = tops[1]
        flipped = (merged.blobs[mask].data != original.blobs[mask].data).mean()
        assert flipped <= max_share_flipped, (name, flipped)
        merged.blobs[mask].data[...] = original.blobs[mask].data
        start = names[index + 1] if index + 1 < len(names) else None
    if start is not None:
        merged.forward(start=start)


def assert_same_outputs(caffe, original, original_param, merged_net_path, merged_weights_path, seed=1):
    """Every folded activation and the final scores agree to 1e-4 relative.  (Softmax
    probabilities of a random deep net are saturated: they amplify rounding, so the scores
    before them are compared instead.)"""
    merged = load_net(caffe, read_net(merged_net_path), "TEST", weights=merged_weights_path)
    x = np.random.default_rng(seed).uniform(-1, 1, original.blobs["data"].data.shape)
    original.blobs["data"].data[...] = x
    original.forward()
    merged.blobs["data"].data[...] = x
    forward_with_switches_of(merged, original)
    # A folded convolution's top holds "after BN" in the merged net; in the original that is
    # the top of its Scale (or BatchNorm) layer.
    layers = {layer.name: layer for layer in original_param.layer}
    pairs = [((layers[f.scale] if f.scale else layers[f.batch_norm]).top[0], layers[f.conv].top[0])
             for f in merge_net(original_param)[1]]
    pairs += [(name, name) for name in ("fc", "Decoder_score.up8") if name in original.blobs]
    assert pairs
    for before, after in pairs:
        a, b = original.blobs[before].data, merged.blobs[after].data
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), (before, after)


def deploy_size(model: str) -> tuple[int, int]:
    return (224, 224) if model in ("df1", "df2", "df2a", "dflite") else (256, 512)


@pytest.mark.parametrize("model", model_names())
def test_merged_model_matches_in_caffe_and_equals_generator(caffe, tmp_path, model):
    """Every named model: random weights + BN statistics, merged, run in Caffe: same outputs;
    and the merged prototxt is the generator's own merged-BN deploy net."""
    size = deploy_size(model)
    param = net_for(model, "deploy", input_size=size)
    net_path, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    write_net(param, net_path)
    original = randomize(caffe, param, weights)
    out_net, out_weights = tmp_path / "merged.prototxt", tmp_path / "merged.caffemodel"
    folds = merge_files(net_path, weights, out_net, out_weights)
    assert len(folds) == sum(layer.type == "BatchNorm" for layer in param.layer) > 0
    assert_same_outputs(caffe, original, param, out_net, out_weights)
    merged = read_net(out_net)
    expected = net_for(model, "deploy_mergebn", input_size=size)
    assert [l.name for l in merged.layer] == [l.name for l in expected.layer]
    for got, want in zip(merged.layer, expected.layer):
        assert got == want, f"layer {got.name}:\n{got}\n!=\n{want}"


def test_release_df1seg_merges_into_release_mergebn(reference_dir):
    """The authors' df1seg.prototxt merges into their df1seg_mergebn.prototxt, layer for layer
    (the data layer aside: the released files differ there in `shuffle: false`)."""
    release = reference_dir / "release" / "prototxt"
    merged, folds = merge_net(read_net(release / "df1seg.prototxt"))
    expected = read_net(release / "df1seg_mergebn.prototxt")
    assert len(folds) == 39 and all(f.scale for f in folds)
    assert [l.name for l in merged.layer] == [l.name for l in expected.layer]
    for got, want in zip(merged.layer[1:], expected.layer[1:]):
        assert got == want, f"layer {got.name}:\n{got}\n!=\n{want}"


def test_release_df1seg_merged_runs_the_same_in_caffe(caffe, reference_dir, tmp_path):
    """The release net at its own 1024x2048 size, with its TEST-phase Interp sizes."""
    param = with_input_layer(read_net(reference_dir / "release" / "prototxt" / "df1seg.prototxt"),
                             RELEASE_SEG_INPUT)
    net_path, weights = tmp_path / "df1seg.prototxt", tmp_path / "df1seg.caffemodel"
    write_net(param, net_path)
    original = randomize(caffe, param, weights, seed=3)
    # The caffemodel Caffe wrote carries each layer's parameters with the fork's numbering:
    # interp_param is field 148 (key 0xA2 0x09 on the wire).
    assert b"\xa2\x09" in weights.read_bytes()
    merge_files(net_path, weights, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    assert_same_outputs(caffe, original, param, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")


def test_reads_fork_fields_148_149(tmp_path):
    """A caffemodel with Interp (148) and ShuffleChannel (149) layer parameters parses."""
    model = caffe_pb2.NetParameter(name="fork")
    conv = model.layer.add(name="conv", type="Convolution")
    conv.blobs.add(data=[1.0] * 8).shape.dim.extend([2, 1, 2, 2])
    model.layer.add(name="up", type="Interp").interp_param.zoom_factor = 2
    model.layer.add(name="shuffle", type="ShuffleChannel").shuffle_channel_param.group = 2
    raw = model.SerializeToString()
    assert b"\xa2\x09" in raw and b"\xaa\x09" in raw       # keys of fields 148 and 149
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(raw)
    weights = read_caffemodel(path)
    assert list(weights) == ["conv"] and weights["conv"][0].shape == (2, 1, 2, 2)


def test_misfit_caffemodel_lists_every_problem(caffe, tmp_path):
    param = net_for("df1", "deploy", input_size=(224, 224))
    net_path, weights = tmp_path / "df1.prototxt", tmp_path / "df1.caffemodel"
    write_net(param, net_path)
    randomize(caffe, param, weights)
    model = caffe_pb2.NetParameter()
    model.ParseFromString(weights.read_bytes())
    layers = {layer.name: layer for layer in model.layer}
    layers["conv2"].blobs[0].shape.dim[1] = 16                  # 64x32x3x3 -> 64x16x3x3
    del layers["conv2"].blobs[0].data[len(layers["conv2"].blobs[0].data) // 2:]
    del layers["conv1/bn"].blobs[2]                             # BN without its scale factor
    model.layer.remove(layers["res2.1.conv1/bn_scale"])
    weights.write_bytes(model.SerializeToString())
    result = subprocess.run([sys.executable, "-m", "tools.merge_bn", str(net_path), str(weights),
                             "--out-net", str(tmp_path / "o.prototxt"),
                             "--out-weights", str(tmp_path / "o.caffemodel")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = result.stderr
    assert "3 problems" in err
    assert "layer 'conv2' blob 0: prototxt needs (64, 32, 3, 3), caffemodel" in err and "(64, 16, 3, 3)" in err
    assert "layer 'conv1/bn': prototxt needs 3 blobs" in err
    assert "layer 'res2.1.conv1/bn_scale': missing" in err
    assert not (tmp_path / "o.caffemodel").exists()


# ShuffleNet-style: BatchNorms after an Eltwise and a Concat cannot be folded; the ones after
# convolutions (a grouped one included) can.  (Our Caffe has no ShuffleChannel layer to run.)
SHUFFLE_NET = """
name: "shuffle"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 bias_term: false } }
layer { name: "conv1/bn" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "conv1/scale" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv1b" type: "Convolution" bottom: "data" top: "conv1b"
        convolution_param { num_output: 8 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "conv1b" top: "sum" }
layer { name: "sum/bn" type: "BatchNorm" bottom: "sum" top: "sum" }
layer { name: "sum/scale" type: "Scale" bottom: "sum" top: "sum" scale_param { bias_term: true } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "concat" type: "Concat" bottom: "sum" bottom: "pool" top: "concat" }
layer { name: "concat/bn" type: "BatchNorm" bottom: "concat" top: "concat/bn" }
layer { name: "conv2" type: "Convolution" bottom: "concat/bn" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "conv2/bn" type: "BatchNorm" bottom: "conv2" top: "conv2/bn" }
layer { name: "conv2/scale" type: "Scale" bottom: "conv2/bn" top: "conv2/out" scale_param { bias_term: true } }
"""


def test_batchnorms_that_cannot_be_folded_stay_and_are_named(caffe, tmp_path):
    param = text_format.Parse(SHUFFLE_NET, caffe_pb2.NetParameter())
    net_path, weights = tmp_path / "shuffle.prototxt", tmp_path / "shuffle.caffemodel"
    write_net(param, net_path)
    original = randomize(caffe, param, weights, seed=5)
    result = subprocess.run([sys.executable, "-m", "tools.merge_bn", str(net_path), str(weights),
                             "--out-net", str(tmp_path / "m.prototxt"),
                             "--out-weights", str(tmp_path / "m.caffemodel")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 2, result.stderr
    assert "'sum/bn' is kept" in warnings[0] and "Eltwise 'sum'" in warnings[0]
    assert "'concat/bn' is kept" in warnings[1] and "Concat 'concat'" in warnings[1]
    assert "folded 2 BatchNorm layers (2 with Scale), kept 2 that cannot be folded" in result.stderr
    merged = read_net(tmp_path / "m.prototxt")
    names = [layer.name for layer in merged.layer]
    assert "conv1/bn" not in names and "conv2/scale" not in names
    assert {"sum/bn", "sum/scale", "concat/bn"} <= set(names)
    assert_same_outputs(caffe, original, param, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    kept = read_caffemodel(tmp_path / "m.caffemodel")
    assert np.allclose(kept["sum/bn"][0], original.params["sum/bn"][0].data)


def test_batchnorm_not_after_a_convolution_is_kept_with_a_warning():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="data", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 8, 8])
    net.layer.add(name="pool", type="Pooling", bottom=["data"], top=["pool"])
    net.layer.add(name="bn", type="BatchNorm", bottom=["pool"], top=["pool"])
    warnings = []
    merged, folds = merge_net(net, warnings.append)
    assert folds == [] and [layer.name for layer in merged.layer] == ["data", "pool", "bn"]
    assert warnings == ["BatchNorm 'bn' is kept, not folded: it follows Pooling 'pool', "
                        "not a Convolution/InnerProduct"]


def test_a_batchnorm_without_a_top_is_an_error():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="bn", type="BatchNorm", bottom=["x"])
    with pytest.raises(MergeError, match="exactly one bottom and one top"):
        merge_net(net)
