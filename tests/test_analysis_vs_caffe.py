"""Our analysis against the real Caffe built by `make caffe`: Caffe sets the net up (via
`caffe time`, which builds the TRAIN phase) and prints every "Top shape" and the running
"Memory required for data"; ours must print the same, layer for layer.  Nets our analysis
rejects must make Caffe fail too.

Caffe comes from tools.runtime.caffe (`make caffe`); a missing Caffe fails these tests, it
does not skip them."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings, strategies as st

from prototxt_gen import caffe_pb2
from prototxt_gen.analysis import AnalysisError, analyze
from prototxt_gen.netio import read_net
from tests.test_analysis_caffe_log import parse_setup_log
from tests.test_analysis_shapes import BN_NET, SMALL

def caffe_setup(binary: Path, net: caffe_pb2.NetParameter, tmp_path: Path):
    """Run `caffe time` for one iteration; return (whether Caffe finished setting the net
    up, parsed setup, stderr).  What happens after set-up (e.g. ArgMax has no backward
    pass) does not matter here."""
    path = tmp_path / "net.prototxt"
    path.write_text(text_format.MessageToString(net))
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    proc = subprocess.run([str(binary), "time", "-model", str(path), "-iterations", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    done = "Network initialization done." in proc.stderr
    return done, parse_setup_log(proc.stderr), proc.stderr


def assert_same_as_caffe(binary, net, tmp_path):
    done, caffe, log = caffe_setup(binary, net, tmp_path)
    try:
        ours = analyze(net, phase="TRAIN")
    except AnalysisError as exc:
        # We refuse empty (zero-size) outputs outright; Caffe accepts a few of them.
        assert not done or "is empty" in str(exc), f"we reject the net ({exc}) but Caffe set it up"
        return
    assert done, f"Caffe failed where we did not:\n{log[-2000:]}"
    assert [layer.name for layer in ours.layers] == [name for name, _, _ in caffe]
    for (name, shapes, memory), layer in zip(caffe, ours.layers):
        assert [t.shape_string() for t in layer.tops] == shapes, name
        assert layer.memory_bytes == memory, name


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.mark.parametrize("text", [SMALL, BN_NET], ids=["small", "bn"])
def test_fixed_nets(caffe_bin, tmp_path, text):
    assert_same_as_caffe(caffe_bin, parse(text), tmp_path)


def test_df1_backbone_at_224(caffe_bin, tmp_path, reference_dir):
    net = read_net(reference_dir / "release/prototxt/df1.prototxt")
    data = net.layer[0]
    data.Clear()
    data.name, data.type = "data", "Input"
    data.top.extend(["data", "label"])
    data.input_param.shape.add().dim.extend([1, 3, 224, 224])
    data.input_param.shape.add().dim.extend([1])
    assert_same_as_caffe(caffe_bin, net, tmp_path)


# Random chains of shape-changing layers: either both agree on every shape and the memory,
# or both refuse the net.
layer_specs = st.one_of(
    st.tuples(st.just("Convolution"), st.integers(1, 5), st.integers(0, 3), st.integers(1, 3),
              st.integers(1, 2), st.sampled_from([1, 2])),
    st.tuples(st.just("Pooling"), st.integers(1, 5), st.integers(0, 2), st.integers(1, 3),
              st.sampled_from(["MAX", "AVE"])),
    st.tuples(st.just("Deconvolution"), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3)),
    st.tuples(st.just("Interp"), st.sampled_from(["zoom_factor", "shrink_factor", "both"]),
              st.integers(1, 3), st.integers(-1, 0)),
    st.tuples(st.just("Concat")),
    st.tuples(st.just("Eltwise")),
)


def chain_net(hw, specs) -> caffe_pb2.NetParameter:
    lines = [f'input: "data" input_shape {{ dim: 1 dim: 4 dim: {hw[0]} dim: {hw[1]} }}']
    bottom = "data"
    for i, spec in enumerate(specs):
        kind, name = spec[0], f"l{i}"
        if kind == "Convolution":
            _, k, pad, stride, dilation, group = spec
            params = (f"num_output: 4 kernel_size: {k} pad: {pad} stride: {stride} "
                      f"dilation: {dilation} group: {group}")
            lines.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                         f"convolution_param {{ {params} }} }}")
        elif kind == "Pooling":
            _, k, pad, stride, pool = spec
            lines.append(f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
                         f"pooling_param {{ pool: {pool} kernel_size: {k} pad: {pad} stride: {stride} }} }}")
        elif kind == "Deconvolution":
            _, k, pad, stride = spec
            lines.append(f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{name}" '
                         f"convolution_param {{ num_output: 4 kernel_size: {k} pad: {pad} stride: {stride} }} }}")
        elif kind == "Interp":
            _, mode, factor, pad = spec
            params = {"zoom_factor": f"zoom_factor: {factor}", "shrink_factor": f"shrink_factor: {factor}",
                      "both": f"zoom_factor: {factor} shrink_factor: 2"}[mode]
            lines.append(f'layer {{ name: "{name}" type: "Interp" bottom: "{bottom}" top: "{name}" '
                         f"interp_param {{ {params} pad_beg: {pad} pad_end: {pad} }} }}")
        elif kind == "Concat":
            # channels double, then a 1x1 conv brings them back to 4
            lines.append(f'layer {{ name: "{name}" type: "Concat" bottom: "{bottom}" bottom: "{bottom}" top: "{name}" }}')
            lines.append(f'layer {{ name: "{name}r" type: "Convolution" bottom: "{name}" top: "{name}r" '
                         "convolution_param { num_output: 4 kernel_size: 1 } }")
            name = f"{name}r"
        else:
            lines.append(f'layer {{ name: "{name}" type: "Eltwise" bottom: "{bottom}" bottom: "{bottom}" top: "{name}" }}')
        lines.append(f'layer {{ name: "{name}/relu" type: "ReLU" bottom: "{name}" top: "{name}" }}')
        bottom = name
    return parse("\n".join(lines))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.tuples(st.integers(1, 40), st.integers(1, 40)), st.lists(layer_specs, min_size=1, max_size=5))
def test_random_chains(caffe_bin, tmp_path, hw, specs):
    assert_same_as_caffe(caffe_bin, chain_net(hw, specs), tmp_path)


@pytest.mark.parametrize("model, form, size", [
    ("df1seg", "caffetime_mergebn", (256, 512)),
    ("df2seg1_d8", "caffetime", (128, 256)),
    ("df2a", "deploy_mergebn", (224, 224)),
])
def test_generated_nets(caffe_bin, tmp_path, model, form, size):
    generate = pytest.importorskip("prototxt_gen.generate", reason="the generator has not landed yet")
    assert_same_as_caffe(caffe_bin, generate.net_for(model, form, input_size=size), tmp_path)
