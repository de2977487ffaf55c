"""The analysis reads the segmentation forks' layers (SegNet / ENet Upsample with the pooling
mask, PSPNet / SegNet BN, DenseImageData) by their own field names, strictly parsed."""
from __future__ import annotations

import subprocess
import sys

from prototxt_gen.analysis import analyze
from prototxt_gen.netio import parse_net_text

SEGNET_STYLE = """
name: "segnet_style"
layer { name: "data" type: "DenseImageData" top: "data" top: "label"
  dense_image_data_param { source: "train.txt" batch_size: 2 new_height: 45 new_width: 60 shuffle: true } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "conv1_bn" type: "BN" bottom: "conv1" top: "conv1"
  bn_param { scale_filler { type: "constant" value: 1 } shift_filler { type: "constant" value: 0.001 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" top: "pool1_mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "upsample1" type: "Upsample" bottom: "pool1" bottom: "pool1_mask" top: "up1"
  upsample_param { scale: 2 upsample_h: 45 upsample_w: 60 } }
layer { name: "up_bn" type: "BN" bottom: "up1" top: "up1" bn_param { bn_mode: INFERENCE } }
"""

ENET_STYLE = """
name: "enet_style"
input: "data" input_shape { dim: 1 dim: 16 dim: 9 dim: 15 }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "unpool" type: "Upsample" bottom: "pool" bottom: "pool_mask" top: "unpool"
  upsample_param { scale: 2 pad_out_h: true pad_out_w: true } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "unpool" top: "shuffled"
  shuffle_channel_param { group: 4 } }
"""

PSPNET_STYLE = """
name: "pspnet_style"
input: "data" input_shape { dim: 1 dim: 3 dim: 33 dim: 33 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 bias_term: false } }
layer { name: "conv1/bn" type: "BN" bottom: "conv1" top: "conv1"
  param { lr_mult: 1 decay_mult: 0 } param { lr_mult: 1 decay_mult: 0 }
  param { lr_mult: 0 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 }
  bn_param { slope_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0 }
             frozen: true momentum: 0.95 } }
layer { name: "interp" type: "Interp" bottom: "conv1" top: "up" interp_param { zoom_factor: 2 } }
"""


def shapes(text: str, **kwargs) -> dict[str, tuple]:
    result = analyze(parse_net_text(text, "<test>"), **kwargs)
    return {top.name: top.shape for layer in result.layers for top in layer.tops}, result


def test_segnet_style_dense_image_data_bn_and_unpool():
    tops, result = shapes(SEGNET_STYLE)
    assert tops["data"] == (2, 3, 45, 60) and tops["label"] == (2, 1, 45, 60)
    assert tops["pool1"] == tops["pool1_mask"] == (2, 8, 23, 30)
    assert tops["up1"] == (2, 8, 45, 60)
    bn_params = [layer.params for layer in result.layers if layer.type == "BN"]
    assert bn_params == [2 * 8, 2 * 8]  # SegNet's BN: scale and shift only


def test_enet_style_pad_out_and_shuffle():
    tops, _ = shapes(ENET_STYLE)
    assert tops["pool"] == (1, 16, 5, 8)
    assert tops["unpool"] == (1, 16, 9, 15)   # 2 * 5 - 1, 2 * 8 - 1
    assert tops["shuffled"] == (1, 16, 9, 15)


def test_pspnet_style_bn():
    tops, result = shapes(PSPNET_STYLE)
    assert tops["up"] == (1, 16, 33, 33)
    assert result.params == 16 * 3 * 9 + 4 * 16


def test_cli_reads_fork_nets_without_allow_unknown_fields(tmp_path):
    for name, text in {"segnet": SEGNET_STYLE, "enet": ENET_STYLE, "pspnet": PSPNET_STYLE}.items():
        path = tmp_path / f"{name}.prototxt"
        path.write_text(text)
        done = subprocess.run([sys.executable, "-m", "tools.analyze", str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "Upsample" in done.stdout or name == "pspnet", done.stdout


def test_shuffle_channel_groups_must_divide_the_channels():
    import pytest
    from prototxt_gen import caffe_pb2, shapes
    layer = caffe_pb2.LayerParameter(name="shuffle", type="ShuffleChannel")
    layer.shuffle_channel_param.group = 3
    assert shapes.RULES["ShuffleChannel"](layer, [(1, 12, 4, 4)]).tops == [(1, 12, 4, 4)]
    with pytest.raises(shapes.ShapeError, match="16 channels do not split into 3 groups"):
        shapes.RULES["ShuffleChannel"](layer, [(1, 16, 4, 4)])
