"""Reading nets (prototxt / Caffe log, file:line errors) and python -m tools.analyze."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prototxt_gen.netio import NetReadError, read_net

REPO = Path(__file__).resolve().parent.parent
LOG = "release/log/log_df1seg_mergebn_caffetime_titanx.txt"


def analyze_cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.analyze", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True)


def assert_one_line_error(proc, prefix):
    """Exit 2, nothing on stdout, one line on stderr: run_cli's ``PROG: error: ...``."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"python -m tools.analyze: {prefix}"), proc.stderr


# --------------------------------------------------------------------------- netio

def test_malformed_prototxt_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bottom: a\n}\n')
    with pytest.raises(NetReadError) as err:
        read_net(bad)
    assert err.value.line == 5 and str(err.value).startswith(f"{bad}:5: column 11: ")


def test_log_errors_point_at_the_log_line(tmp_path, reference_dir):
    lines = (reference_dir / LOG).read_text().splitlines()
    target = next(i for i, line in enumerate(lines) if "num_output: 32" in line)
    lines[target] = "    num_output: thirty-two"
    log = tmp_path / "broken.log"
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(NetReadError) as err:
        read_net(log)
    assert err.value.line == target + 1


def test_log_net_is_the_printed_one(reference_dir):
    net = read_net(reference_dir / LOG)
    assert net.state.phase == 0  # TRAIN: what `caffe time` builds
    assert net.layer[0].type == "Input" and net.layer[-1].name == "Decoder_score.up8"


@pytest.mark.parametrize("content, message", [
    (b"\x00\xff\xfe binary", "not a text file"),
    (b'layers { name: "old" type: RELU }', "V1 'layers' format"),
    (b"I0308 15:13:25.958539 30521 net.cpp:51] Initializing net from parameters: \nlayer {\n",
     "Expected"),
])
def test_other_bad_inputs(tmp_path, content, message):
    path = tmp_path / "net.prototxt"
    path.write_bytes(content)
    with pytest.raises(NetReadError, match=message):
        read_net(path)


def test_missing_file():
    with pytest.raises(NetReadError, match="cannot read"):
        read_net("/nonexistent/net.prototxt")


# --------------------------------------------------------------------------- CLI

def test_json_interface_on_the_caffe_log(reference_dir):
    proc = analyze_cli(reference_dir / LOG, "--phase", "TRAIN", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"layers", "params", "macs", "memory_bytes"}
    assert data["memory_bytes"] == 887289856
    first = data["layers"][1]
    assert {"name", "type", "tops"} <= set(first)
    assert first["name"] == "conv1" and first["tops"] == [{"name": "conv1", "shape": [1, 32, 512, 1024]}]
    assert data["params"] == sum(layer["params"] for layer in data["layers"])
    assert data["macs"] == sum(layer["macs"] for layer in data["layers"]) > 10**10


def test_phase_defaults_to_the_one_the_log_built(reference_dir):
    proc = analyze_cli(reference_dir / LOG, "--json")  # the log's state says TRAIN
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["memory_bytes"] == 887289856
    forced = analyze_cli(reference_dir / LOG, "--phase", "TEST")
    assert_one_line_error(forced, f"error: {reference_dir / LOG}: layer 'psp.concat' (type Concat): "
                          "unknown bottom blob 'psp.pool1.interp'")


def test_input_flag_sizes_the_image_data_layer(reference_dir):
    path = reference_dir / "release/prototxt/df1seg_mergebn.prototxt"
    proc = analyze_cli(path, "--input", "1x3x1024x2048", "--json")
    assert proc.returncode == 0, proc.stderr
    layers = {layer["name"]: layer for layer in json.loads(proc.stdout)["layers"]}
    assert layers["prob"]["tops"][0]["shape"] == [1, 19, 1024, 2048]
    # The release's Interp sizes are written for 1024x2048: another size cannot be set up.
    other = analyze_cli(path, "--input", "1x3x512x1024")
    assert_one_line_error(other, f"error: {path}: layer 'psp.concat' (type Concat): all inputs "
                          "must have the same shape, except at concat_axis")


def test_table_on_icnet(reference_dir):
    proc = analyze_cli(reference_dir / "icnet/icnet_cityscapes.prototxt", "--input", "1x3x1025x2049")
    assert proc.returncode == 0, proc.stderr
    assert "conv5_3_pool1" in proc.stdout and "GMACs" in proc.stdout
    assert "memory required for data:" in proc.stdout
    assert "encoding:" not in proc.stdout  # ICNet is not a DF net


def test_table_shows_the_recovered_encoding(reference_dir):
    proc = analyze_cli(reference_dir / "release/prototxt/df1seg.prototxt", "--input", "1x3x1024x2048")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("encoding: [(64,64,64),(128,128,128),(256,256,256,512)]:[K,32,128]")


def test_icnet_shapes(reference_dir):
    from prototxt_gen.analysis import analyze
    result = analyze(read_net(reference_dir / "icnet/icnet_cityscapes.prototxt"))
    assert result.layer("data_sub2").tops[0].shape == (1, 3, 513, 1025)  # shrink 2: (1025-1)/2+1
    # PSP pooling at 1/32 of the half-size input: 33x65 -> 1x1 .. 6x6 (ICNet's own kernels)
    assert result.layer("conv5_3_pool1").tops[0].shape[2:] == (1, 1)
    interps = [layer for layer in result.layers if layer.type == "Interp"]
    assert interps and all(min(layer.tops[0].shape) > 0 for layer in interps)


def test_icnet_bnnomerge_reads_pspnet_bn_param_strictly(reference_dir):
    # The schema carries the PSPNet fork's bn_param: no --allow-unknown-fields needed.
    path = reference_dir / "icnet/icnet_cityscapes_bnnomerge.prototxt"
    proc = analyze_cli(path, "--json")
    assert proc.returncode == 0, proc.stderr
    bn = [layer for layer in json.loads(proc.stdout)["layers"] if layer["type"] == "BN"]
    assert bn and bn[0]["params"] == 4 * bn[0]["tops"][0]["shape"][1]


@pytest.mark.parametrize("args, prefix", [
    (["{tmp}/bad.prototxt"], "error: {tmp}/bad.prototxt:2: "),
    (["{tmp}/unknown.prototxt"], "error: {tmp}/unknown.prototxt: layer 'w' (type Warp): unknown layer type"),
    (["{tmp}/nosize.prototxt"], "error: {tmp}/nosize.prototxt: layer 'data' (type ImageData)"),
])
def test_cli_errors(tmp_path, args, prefix):
    (tmp_path / "bad.prototxt").write_text('layer {\n  name: "x" bogus: 1\n}\n')
    (tmp_path / "unknown.prototxt").write_text('input: "d" input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2\n'
                                               'layer { name: "w" type: "Warp" bottom: "d" top: "w" }\n')
    (tmp_path / "nosize.prototxt").write_text('layer { name: "data" type: "ImageData" top: "data" top: "l"'
                                              ' image_data_param { source: "x" } }\n')
    assert_one_line_error(analyze_cli(*[a.format(tmp=tmp_path) for a in args]), prefix.format(tmp=tmp_path))


def test_cli_rejects_bad_input_flag(reference_dir):
    proc = analyze_cli(reference_dir / LOG, "--input", "1x3xbig")
    assert proc.returncode == 2 and "NxCxHxW" in proc.stderr and "Traceback" not in proc.stderr


def test_shape_flag_for_python_data_layers(tmp_path):
    net = tmp_path / "train.prototxt"
    net.write_text('layer { name: "data" type: "Python" top: "data" top: "label"\n'
                   '  python_param { module: "m" layer: "L" } }\n'
                   'layer { name: "score" type: "Convolution" bottom: "data" top: "score"\n'
                   '  convolution_param { num_output: 5 kernel_size: 1 } }\n'
                   'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }\n')
    missing = analyze_cli(net, "--input", "2x3x8x8")
    assert_one_line_error(missing, f"error: {net}: layer 'data' (type Python): the shape of top 'label' "
                          "is not known; give it (e.g. --shape label=")
    proc = analyze_cli(net, "--input", "2x3x8x8", "--shape", "label=2x1x8x8", "--json")
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)["layers"]
    assert layers[0]["tops"] == [{"name": "data", "shape": [2, 3, 8, 8]}, {"name": "label", "shape": [2, 1, 8, 8]}]
    wrong = analyze_cli(net, "--input", "2x3x8x8", "--shape", "label=2x1x4x4")
    assert_one_line_error(wrong, f"error: {net}: layer 'loss' (type SoftmaxWithLoss): number of labels (32) "
                          "must match number of predictions (128)")
    unused = analyze_cli(net, "--input", "2x3x8x8", "--shape", "label=2x1x8x8", "--shape", "mask=1x1")
    assert_one_line_error(unused, f"error: {net}: shapes were given for 'mask'")
