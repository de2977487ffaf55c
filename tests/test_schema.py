"""The patched schema carries the POP fork's wire numbers (facts of the released caffemodels)."""
import pytest

from prototxt_gen import caffe_pb2


@pytest.mark.parametrize("message, field, number", [
    (caffe_pb2.LayerParameter, "interp_param", 148),
    (caffe_pb2.LayerParameter, "shuffle_channel_param", 149),
    (caffe_pb2.InterpParameter, "height", 1), (caffe_pb2.InterpParameter, "width", 2),
    (caffe_pb2.InterpParameter, "zoom_factor", 3), (caffe_pb2.InterpParameter, "shrink_factor", 4),
    (caffe_pb2.InterpParameter, "pad_beg", 5), (caffe_pb2.InterpParameter, "pad_end", 6),
    (caffe_pb2.ShuffleChannelParameter, "group", 1),
    (caffe_pb2.TransformationParameter, "crop_h", 8), (caffe_pb2.TransformationParameter, "crop_w", 9),
    (caffe_pb2.ImageDataParameter, "img_rand_h_lower", 13), (caffe_pb2.ImageDataParameter, "img_rand_h_upper", 14),
    (caffe_pb2.ImageDataParameter, "img_rand_w_lower", 15), (caffe_pb2.ImageDataParameter, "img_rand_w_upper", 16),
    (caffe_pb2.LossParameter, "th", 4), (caffe_pb2.SoftmaxParameter, "label_mode", 3),
])
def test_fork_field_numbers(message, field, number):
    assert message.DESCRIPTOR.fields_by_name[field].number == number


def test_bvlc_clip_param_moved_off_148():
    clip = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["clip_param"]
    assert clip.number not in (148, 149)
    numbers = [f.number for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields]
    assert len(numbers) == len(set(numbers))


def test_defaults_of_the_fork():
    assert caffe_pb2.InterpParameter().zoom_factor == 1 and caffe_pb2.InterpParameter().shrink_factor == 1
    assert caffe_pb2.ShuffleChannelParameter().group == 1
    assert caffe_pb2.SoftmaxParameter().label_mode == 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_wire_bytes_written_by_the_fork_parse():
    """Hand-assembled bytes of a layer as the fork writes it: field 148 holds Interp's sizes."""
    interp = b"\x08" + _varint(33) + b"\x10" + _varint(65)          # height=33, width=65
    shuffle = b"\x08" + _varint(3)                                   # group=3
    name = b"psp"
    layer = (b"\x0a" + _varint(len(name)) + name
             + _varint(148 << 3 | 2) + _varint(len(interp)) + interp
             + _varint(149 << 3 | 2) + _varint(len(shuffle)) + shuffle)
    net = caffe_pb2.NetParameter()
    net.ParseFromString(_varint(100 << 3 | 2) + _varint(len(layer)) + layer)   # NetParameter.layer = 100
    parsed = net.layer[0]
    assert parsed.name == "psp"
    assert (parsed.interp_param.height, parsed.interp_param.width) == (33, 65)
    assert parsed.shuffle_channel_param.group == 3
    assert not parsed.HasField("clip_param")


def test_segmentation_fork_layers_parse_from_text():
    """SegNet/ENet's Upsample, PSPNet's BN and SegNet's DenseImageData params read by field name."""
    from google.protobuf import text_format
    net = text_format.Parse(
        'layer { name: "d" type: "DenseImageData" top: "data" top: "label"'
        '  dense_image_data_param { source: "l.txt" batch_size: 4 new_height: 360 new_width: 480 shuffle: true } }'
        'layer { name: "bn" type: "BN" bottom: "data" top: "data"'
        '  bn_param { slope_filler { type: "constant" value: 1 } momentum: 0.95 frozen: true } }'
        'layer { name: "bn2" type: "BN" bottom: "data" top: "data" bn_param { bn_mode: INFERENCE } }'
        'layer { name: "up" type: "Upsample" bottom: "data" bottom: "mask" top: "up"'
        '  upsample_param { scale: 2 upsample_h: 45 upsample_w: 60 pad_out_h: true } }',
        caffe_pb2.NetParameter())
    data, bn, bn2, up = net.layer
    assert data.dense_image_data_param.new_height == 360 and data.dense_image_data_param.batch_size == 4
    assert bn.bn_param.frozen and abs(bn.bn_param.momentum - 0.95) < 1e-6
    assert bn2.bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE
    assert up.upsample_param.upsample_h == 45 and up.upsample_param.pad_out_h
    assert not up.upsample_param.HasField("scale_h")
    assert caffe_pb2.UpsampleParameter().scale == 2 and caffe_pb2.DenseImageDataParameter().batch_size == 1
    numbers = {f.name: f.number for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields}
    assert {numbers["upsample_param"], numbers["bn_param"], numbers["dense_image_data_param"]}.isdisjoint(
        {148, 149, 150})
