"""prototxt_gen.shapes' pooling geometry, now shared with tools.export.caffe_net: floor rounding
(PoolingParameter.round_mode), which the analysis did not read before, against real Caffe."""
from __future__ import annotations

import pytest

from prototxt_gen import caffe_pb2, shapes
from tests.test_analysis_vs_caffe import assert_same_as_caffe
from tools.export.caffe_net import CaffeNetError, build_net, pool_geometry


def pooling_net(hw, kernel, stride, pad, round_mode) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="pool")
    data = net.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[1, 2, *hw])
    pool = net.layer.add(name="pool", type="Pooling", bottom=["data"], top=["pool"])
    p = pool.pooling_param
    p.pool, p.kernel_size, p.stride, p.pad, p.round_mode = (
        caffe_pb2.PoolingParameter.MAX, kernel, stride, pad, round_mode)
    return net


# (input H, W, kernel, stride, pad): sizes where ceil and floor rounding give different outputs.
CASES = [((7, 9), 2, 2, 0), ((10, 6), 3, 2, 1), ((6, 6), 3, 2, 0)]
FLOOR, CEIL = caffe_pb2.PoolingParameter.FLOOR, caffe_pb2.PoolingParameter.CEIL


@pytest.mark.parametrize("hw, kernel, stride, pad", CASES)
def test_round_modes_differ_and_both_tools_agree(hw, kernel, stride, pad):
    floor = build_net(pooling_net(hw, kernel, stride, pad, FLOOR)).blob_shapes["pool"]
    ceil = build_net(pooling_net(hw, kernel, stride, pad, CEIL)).blob_shapes["pool"]
    assert floor != ceil
    expected = tuple(shapes.pool_output_size(s, kernel, pad, stride, FLOOR) for s in hw)
    assert floor[2:] == expected


@pytest.mark.parametrize("round_mode", [FLOOR, CEIL], ids=["floor", "ceil"])
@pytest.mark.parametrize("hw, kernel, stride, pad", CASES)
def test_round_mode_matches_caffe(caffe_bin, tmp_path, hw, kernel, stride, pad, round_mode):
    assert_same_as_caffe(caffe_bin, pooling_net(hw, kernel, stride, pad, round_mode), tmp_path)


def concat_net(**concat_fields) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="concat")
    data = net.layer.add(name="data", type="Input", top=["a", "b"])
    data.input_param.shape.add(dim=[1, 2, 3, 4])
    data.input_param.shape.add(dim=[1, 5, 3, 4])
    concat = net.layer.add(name="cat", type="Concat", bottom=["a", "b"], top=["cat"])
    for field, value in concat_fields.items():
        setattr(concat.concat_param, field, value)
    return net


@pytest.mark.parametrize("fields", [{"concat_dim": 1}, {"axis": 1}, {"axis": -3},
                                    {"axis": 1, "concat_dim": 1}],
                         ids=["concat_dim", "axis", "negative-axis", "both"])
def test_concat_axis_matches_caffe(caffe_bin, tmp_path, fields):
    """The legacy concat_dim field, shared by prototxt_gen.shapes and tools.export.caffe_net; both
    fields at once is refused, as Caffe refuses it."""
    net = concat_net(**fields)
    assert_same_as_caffe(caffe_bin, net, tmp_path)
    if len(fields) == 1:
        assert build_net(net).blob_shapes["cat"] == (1, 7, 3, 4)
    else:
        with pytest.raises(CaffeNetError, match="'cat'.*not both"):
            build_net(net)


def test_unpadded_window_past_the_input_is_caffes_not_the_exporters(caffe_bin, tmp_path):
    """Kernel 1, stride 2 on width 2: ceil rounding gives a second window starting at column
    2, past the input.  Caffe sets that net up (its last-window check is for padded pooling
    only) and so does the analysis; the ONNX exporter's pool_geometry refuses it."""
    net = pooling_net((1, 2), 1, 2, 0, CEIL)
    assert_same_as_caffe(caffe_bin, net, tmp_path)
    with pytest.raises(CaffeNetError, match="'pool'.*does not fit input size 2"):
        pool_geometry(net.layer[1], (1, 2))
