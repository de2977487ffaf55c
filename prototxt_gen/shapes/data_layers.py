"""Shape rules of the data layers: the sizes a prototxt itself gives (Input, MemoryData,
DummyData, a crop or resize); the others raise NeedsInputShape."""
from __future__ import annotations

from .. import caffe_pb2
from .core import LayerCost, NeedsInputShape, Shape, ShapeError, _check, _check_shape, rule

def _data_shape_error(why: str) -> NeedsInputShape:
    return NeedsInputShape(f"{why}; give the input size (e.g. --input 1x3x1024x2048)")


@rule("Input")
def _input(layer, bottoms):
    shapes = [tuple(s.dim) for s in layer.input_param.shape]
    n_top = len(layer.top)
    _check(len(shapes) in (0, 1, n_top),
           "must specify 'shape' once, once per top blob, or not at all")
    if not shapes:
        raise _data_shape_error("the Input layer gives no shape")
    return LayerCost([_check_shape(shapes[0] if len(shapes) == 1 else shapes[i])
                      for i in range(n_top)])


def _crop_hw(t: caffe_pb2.TransformationParameter) -> tuple[int, int] | None:
    if t.crop_size > 0:
        return t.crop_size, t.crop_size
    if t.crop_h > 0 and t.crop_w > 0:  # the POP fork's rectangular crop
        return t.crop_h, t.crop_w
    return None


def _image_hw(layer, p) -> tuple[int, int]:
    """The (H, W) an image reader outputs: its crop, else its resize (new_height/new_width)."""
    hw = _crop_hw(layer.transform_param)
    if hw is None and p.new_height > 0 and p.new_width > 0:
        hw = (p.new_height, p.new_width)
    if hw is None:
        raise _data_shape_error(f"{layer.type} without crop or new_height/new_width "
                                "takes its size from the images")
    return hw


def _with_label(layer, data: Shape) -> LayerCost:
    tops = [data]
    if len(layer.top) > 1:
        tops.append((data[0],))
    return LayerCost(tops)


@rule("ImageData")
def _image_data(layer, bottoms):
    p = layer.image_data_param
    channels = 3 if p.is_color else 1
    hw = _image_hw(layer, p)
    return _with_label(layer, (p.batch_size, channels) + hw)


@rule("DenseImageData")
def _dense_image_data(layer, bottoms):
    # The SegNet fork's image + label-image reader: the label top is a 1-channel image.
    p = layer.dense_image_data_param
    channels = 3 if p.is_color else 1
    hw = _image_hw(layer, p)
    tops = [(p.batch_size, channels) + hw]
    if len(layer.top) > 1:
        tops.append((p.batch_size, 1) + hw)
    return LayerCost(tops)


@rule("Data")
def _data(layer, bottoms):
    raise _data_shape_error("the Data layer's shape comes from its database")


@rule("MemoryData")
def _memory_data(layer, bottoms):
    p = layer.memory_data_param
    return _with_label(layer, (p.batch_size, p.channels, p.height, p.width))


@rule("DummyData")
def _dummy_data(layer, bottoms):
    p = layer.dummy_data_param
    if len(p.shape):
        shapes = [tuple(s.dim) for s in p.shape]
    else:
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        n = max(len(v) for v in legacy)
        _check(n > 0, "dummy_data_param gives no shape")
        shapes = [tuple(v[0] if len(v) == 1 else v[i] for v in legacy) for i in range(n)]
    n_top = len(layer.top)
    _check(len(shapes) in (1, n_top), "need 1 shape or one per top")
    return LayerCost([_check_shape(shapes[0] if len(shapes) == 1 else shapes[i])
                      for i in range(n_top)])


@rule("HDF5Data", "WindowData", "AnnotatedData", "ImageSegData")
def _opaque_data(layer, bottoms):
    raise _data_shape_error(f"the shape of a {layer.type} layer's output is only "
                            "known when it runs")


@rule("Python")
def _python(layer, bottoms):
    raise ShapeError("a Python layer's shapes are decided by its Python code; they cannot be "
                     "inferred")
