"""Attach training data to generated nets: data layers -> our Python data layers.

The generator (:func:`prototxt_gen.generate.net_for`, form ``"train"``) writes a TRAIN and a
TEST data layer (Caffe ``Data``/``ImageData`` for backbones, our Python layer for
segmentation) with the release's paths.  The functions here point those layers at real data,
carry the POP fork's ``img_rand_*`` / ``crop_h`` / ``crop_w`` over to the Python layer, and
size the classifier for the data set's classes.
"""
from __future__ import annotations

import json
from dataclasses import replace

from prototxt_gen import caffe_pb2
from prototxt_gen.generate import DataConfig, net_for
from prototxt_gen.models import resolve
from prototxt_gen.shapes import is_data_layer

from .data_sources import DataParams

# Our Python data layers (solvers/data_layers.py): what the generated nets name.
DATA_MODULE = "solvers.data_layers"
CLASSIFICATION_LAYER = "ClassificationDataLayer"
SEGMENTATION_LAYER = "SegmentationDataLayer"
SEGMENTATION_READER = (DATA_MODULE, SEGMENTATION_LAYER)


def params_from_layer(layer: caffe_pb2.LayerParameter) -> DataParams:
    """Read a Caffe ``Data`` / ``ImageData`` layer's settings (including the POP fork's
    random scaling and stretching and rectangular crop), or our Python layer's, as
    Python-layer parameters."""
    if layer.type == "Python":
        return DataParams.from_json(layer.python_param.param_str)
    if layer.type not in ("Data", "ImageData"):
        raise ValueError(f"data layer {layer.name!r}: a {layer.type} layer cannot be read as our "
                         "Python data layer's parameters (Data, ImageData or Python only)")
    t = layer.transform_param
    crop = None
    if t.HasField("crop_h") or t.HasField("crop_w"):
        crop = (t.crop_h, t.crop_w)
    elif t.crop_size:
        crop = (t.crop_size, t.crop_size)
    kw = dict(crop=crop, mean=tuple(t.mean_value), scale=t.scale, mirror=t.mirror)
    if layer.type == "ImageData":
        p = layer.image_data_param
        if p.img_rand_h_upper and p.img_rand_w_upper:
            kw.update(rand_h=(p.img_rand_h_lower, p.img_rand_h_upper), rand_w=(p.img_rand_w_lower, p.img_rand_w_upper))
        elif p.new_height and p.new_width:
            kw.update(resize=(p.new_height, p.new_width))
        return DataParams(source=p.source, batch_size=p.batch_size, root=p.root_folder or None,
                          shuffle=p.shuffle, seed=0, **kw)
    p = layer.data_param
    return DataParams(source=p.source, batch_size=p.batch_size, **kw)


def python_data_layer(name: str, params: DataParams, phase: int | None, segmentation: bool,
                      tops=("data", "label")) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name=name, type="Python", top=list(tops))
    if phase is not None:
        layer.include.add(phase=phase)
    layer.python_param.module = DATA_MODULE
    layer.python_param.layer = SEGMENTATION_LAYER if segmentation else CLASSIFICATION_LAYER
    layer.python_param.param_str = params.to_json()
    return layer


def _phase(layer: caffe_pb2.LayerParameter) -> int | None:
    for rule in layer.include:
        if rule.HasField("phase"):
            return rule.phase
    return None


def with_data(net: caffe_pb2.NetParameter, *, train: dict | None = None, test: dict | None = None,
              segmentation: bool | None = None) -> caffe_pb2.NetParameter:
    """A copy of ``net`` whose TRAIN/TEST data layers are Python layers; ``train``/``test``
    override the parameters read from the original layers (e.g. ``source``)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    found = set()
    for i, layer in enumerate(out.layer):
        if not is_data_layer(layer) or layer.type == "Input" or "data" not in layer.top:
            continue
        if layer.type == "Python" and layer.python_param.module != DATA_MODULE:
            continue
        phase = _phase(layer)
        overrides = (train if phase == caffe_pb2.TRAIN else test) or {}
        seg = segmentation if segmentation is not None else (
            layer.type == "Python" and layer.python_param.layer == SEGMENTATION_LAYER)
        params = replace(params_from_layer(layer), **overrides)
        out.layer[i].CopyFrom(python_data_layer(layer.name, params, phase, seg, tuple(layer.top)))
        found.add(phase)
    if train is not None and caffe_pb2.TRAIN not in found:
        raise ValueError("net has no TRAIN data layer")
    if test is not None and caffe_pb2.TEST not in found:
        raise ValueError("net has no TEST data layer")
    return out


def set_num_classes(net: caffe_pb2.NetParameter, num_classes: int) -> caffe_pb2.NetParameter:
    """Resize every classifier (an InnerProduct whose output reaches a loss, accuracy or
    softmax directly) to ``num_classes``."""
    heads = {l.bottom[0] for l in net.layer if l.type in ("SoftmaxWithLoss", "Accuracy", "Softmax") and l.bottom}
    changed = 0
    for layer in net.layer:
        if layer.type == "InnerProduct" and layer.top[0] in heads:
            layer.inner_product_param.num_output = num_classes
            changed += 1
    if not changed:
        raise ValueError("no classifier (InnerProduct feeding a loss/accuracy/softmax) found")
    return net


def add_weight_fillers(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """MSRA fillers on convolutions and inner products without a filler (Caffe's default
    constant-0 filler cannot train from scratch); bilinear up-sampling keeps its filler."""
    for layer in net.layer:
        if layer.type in ("Convolution", "InnerProduct"):
            p = layer.convolution_param if layer.type == "Convolution" else layer.inner_product_param
            if not p.HasField("weight_filler"):
                p.weight_filler.type = "msra"
    return net


def classification_train_net(encoding: str, *, train_source: str, val_source: str, num_classes: int,
                             input_hw: tuple[int, int], batch_size: int, val_batch_size: int | None = None,
                             mean: tuple[float, ...] = (), scale: float = 1.0, mirror: bool = False,
                             rand_h: tuple[int, int] | None = None, rand_w: tuple[int, int] | None = None,
                             seed: int = 0) -> caffe_pb2.NetParameter:
    """The generator's ``train`` form of a backbone encoding on our data: Python data layers,
    ``num_classes`` outputs, fillers for training from scratch."""
    data = DataConfig(val_list=val_source, train_source=train_source, mean=tuple(mean), scale=scale,
                      val_batch=val_batch_size or batch_size, train_batch=batch_size, crop=tuple(input_hw),
                      test_size=tuple(input_hw), rand_h=rand_h, rand_w=rand_w)
    net = net_for(resolve(encoding), "train", data=data)
    common = dict(num_classes=num_classes, crop=tuple(input_hw), mean=tuple(mean), scale=scale)
    net = with_data(net, segmentation=False,
                    train=dict(source=train_source, batch_size=batch_size, rand_h=rand_h, rand_w=rand_w,
                               mirror=mirror, seed=seed, shuffle=True, **common),
                    test=dict(source=val_source, batch_size=val_batch_size or batch_size, shuffle=False,
                              mirror=False, **common))
    return add_weight_fillers(set_num_classes(net, num_classes))


def segmentation_train_net(encoding: str, *, train_list: str, val_list: str, num_classes: int,
                           crop: tuple[int, int], test_size: tuple[int, int], batch_size: int,
                           mean: tuple[float, ...] = (72.0, 83.0, 73.0), scale: float = 0.008,
                           rand_h: tuple[int, int] | None = None, rand_w: tuple[int, int] | None = None,
                           ignore_label: int = 255, seed: int = 0) -> caffe_pb2.NetParameter:
    """The generator's DF-Seg ``train`` form on ``image label`` lists (train ids)."""
    data = DataConfig(val_list=val_list, train_source=train_list, mean=tuple(mean), scale=scale, val_batch=1,
                      train_batch=batch_size, crop=tuple(crop), test_size=tuple(test_size),
                      rand_h=rand_h, rand_w=rand_w, pairs_reader=SEGMENTATION_READER)
    net = net_for(resolve(encoding, num_classes), "train", data=data)
    common = dict(num_classes=num_classes, mean=tuple(mean), scale=scale, ignore_label=ignore_label)
    net = with_data(net, segmentation=True,
                    train=dict(source=train_list, batch_size=batch_size, crop=tuple(crop), rand_h=rand_h,
                               rand_w=rand_w, mirror=True, seed=seed, **common),
                    test=dict(source=val_list, batch_size=1, crop=None, resize=tuple(test_size), mirror=False,
                              shuffle=False, **common))
    return add_weight_fillers(net)


def param_str(layer: caffe_pb2.LayerParameter) -> dict:
    return json.loads(layer.python_param.param_str)
