"""compare_nets / python -m tools.compare_prototxt: defaults and data sources ignored,
presence-significant fields and real changes reported, exit codes 0/1/2."""
from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import text_format
from hypothesis import given, settings, strategies as st

from prototxt_gen import caffe_pb2
from prototxt_gen.compare import compare_nets, normalized
from prototxt_gen.netio import read_net
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RELEASED = ["df1.prototxt", "df2a.prototxt", "df1seg.prototxt", "df1seg_mergebn.prototxt"]


def net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


CONV = 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { %s } }'


def test_explicit_defaults_equal_unset():
    a = net(CONV % "num_output: 8 kernel_size: 3 pad: 0 stride: 1 dilation: 1 bias_term: true group: 1")
    b = net(CONV % "num_output: 8 kernel_size: 3")
    assert compare_nets(a, b) == []


def test_real_change_is_reported_with_layer_and_field_path():
    a = net(CONV % "num_output: 8 kernel_size: 3 pad: 1")
    b = net(CONV % "num_output: 8 kernel_size: 3 pad: 2")
    assert compare_nets(a, b) == ["layer[0] 'c' convolution_param.pad: A=[1] B=[2]"]


def test_unset_side_shows_the_default():
    a = net(CONV % "num_output: 8 kernel_size: 3 bias_term: false")
    b = net(CONV % "num_output: 8 kernel_size: 3 bias_term: true")
    assert compare_nets(a, b) == ["layer[0] 'c' convolution_param.bias_term: A=false B=true (default)"]


def test_data_layer_source_is_ignored_but_other_fields_are_not():
    layer = ('layer { name: "data" type: "ImageData" top: "data" top: "label" '
             'image_data_param { source: "%s" batch_size: %d } }')
    assert compare_nets(net(layer % ("/a/list.txt", 1)), net(layer % ("/b/other.txt", 1))) == []
    assert compare_nets(net(layer % ("/a/list.txt", 1)), net(layer % ("/a/list.txt", 2))) == [
        "layer[0] 'data' image_data_param.batch_size: A=1 (default) B=2"]
    lmdb = 'layer { name: "d" type: "Data" top: "data" data_param { source: "%s" } }'
    assert compare_nets(net(lmdb % "x_lmdb"), net(lmdb % "y_lmdb")) == []


@pytest.mark.parametrize("a, b", [
    ('include { phase: TRAIN }', ''),                         # TRAIN is the enum default
    ('interp_param { zoom_factor: 1 }', 'interp_param { height: 5 width: 5 }'),
    ('argmax_param { axis: 0 }', 'argmax_param { }'),
    ('batch_norm_param { use_global_stats: false }', ''),
])
def test_presence_significant_defaults_are_kept(a, b):
    template = 'layer { name: "l" type: "T" bottom: "x" top: "y" %s }'
    assert compare_nets(net(template % a), net(template % b)) != []


def test_missing_layer_and_order_are_reported():
    a = net('layer { name: "a" type: "ReLU" } layer { name: "b" type: "ReLU" }')
    b = net('layer { name: "a" type: "ReLU" }')
    assert compare_nets(a, b) == ["layer[1] 'b': A={name: \"b\" type: \"ReLU\"} B=<unset>"]
    swapped = net('layer { name: "b" type: "ReLU" } layer { name: "a" type: "ReLU" }')
    assert len(compare_nets(a, swapped)) == 2


@pytest.mark.parametrize("name", RELEASED)
def test_release_equals_its_default_stripped_self(reference_dir, name):
    original = read_net(reference_dir / "release/prototxt" / name)
    stripped = normalized(original)
    assert stripped.ByteSize() < original.ByteSize()  # the release does restate defaults
    assert compare_nets(original, stripped) == []


def test_bn_and_mergebn_releases_differ(reference_dir):
    root = reference_dir / "release/prototxt"
    differences = compare_nets(read_net(root / "df1seg.prototxt"), read_net(root / "df1seg_mergebn.prototxt"))
    assert differences[0] == "layer[1] 'conv1' convolution_param.bias_term: A=false B=true (default)"


_DEFAULTABLE = {  # field -> (default text, non-default text)
    "pad": ("pad: 0", "pad: 1"), "stride": ("stride: 1", "stride: 2"),
    "dilation": ("dilation: 1", "dilation: 2"), "bias_term": ("bias_term: true", "bias_term: false"),
    "group": ("group: 1", "group: 2"), "axis": ("axis: 1", "axis: 2"),
}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_DEFAULTABLE)), st.booleans()))
def test_property_equal_iff_only_defaults_restated(choice):
    """Explicit defaults never make a difference; every non-default value does."""
    explicit = " ".join(_DEFAULTABLE[f][0 if is_default else 1] for f, is_default in choice.items())
    a = net(CONV % f"num_output: 8 kernel_size: 3 {explicit}")
    b = net(CONV % "num_output: 8 kernel_size: 3")
    changed = sorted(f for f, is_default in choice.items() if not is_default)
    reported = sorted(line.split("convolution_param.")[1].split(":")[0] for line in compare_nets(a, b))
    assert reported == changed


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.compare_prototxt", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True)


def test_cli_exit_codes(tmp_path, reference_dir):
    df1 = reference_dir / "release/prototxt/df1.prototxt"
    same = _cli(df1, df1)
    assert same.returncode == 0, same.stderr
    changed = tmp_path / "df1_changed.prototxt"
    changed.write_text(df1.read_text().replace("num_output: 1000", "num_output: 10"))
    diff = _cli(df1, changed)
    assert diff.returncode == 1
    assert "'fc' inner_product_param.num_output: A=1000 B=10" in diff.stdout
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer {\n  name: "x"\n  typo: 3\n}\n')
    broken = _cli(df1, bad)
    assert broken.returncode == 2
    assert broken.stdout == ""
    assert broken.stderr.startswith(f"python -m tools.compare_prototxt: error: {bad}:3: ")
    assert "Traceback" not in broken.stderr and len(broken.stderr.splitlines()) == 1
