"""Whole networks in every form the project uses, from a named model or an encoding.

Forms (``FORMS``):

* ``val`` / ``val_mergebn``      — the release format: ImageData (TEST) + net + Accuracy
  (classification) or Softmax/ArgMax at full and 1/8 resolution (segmentation), with the
  TRAIN/TEST pairs of Interp layers.  ``val_mergebn`` is the merged-BN release file.
* ``train``                      — TRAIN data + TEST data, losses (optional auxiliary
  classifiers for backbones: the paper's "additional supervision").
* ``deploy`` / ``deploy_mergebn`` — Input layer at any HxW, Softmax (and ArgMax) heads.
* ``caffetime`` / ``caffetime_mergebn`` — Input layer, no loss/Softmax/ArgMax, Interp sized
  for the timed input in both phases (``caffe time`` runs the TRAIN phase).

The comparison nets of :mod:`prototxt_gen.zoo` (ResNet, MobileNet, SegNet, ...) have the
deploy and caffetime forms (``zoo.ZOO_FORMS``).

Pyramid-pooling windows follow the training crop and Interp sizes the input size of each
phase: nothing is hard-coded to 1024x2048.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from google.protobuf import text_format

from . import caffe_pb2
from . import layers as L
from .backbone import OUTPUT_STRIDE, backbone, block, feature_size, stem
from .decoder import InterpSizes, decoder, pyramid_pooling
from .encoding import Backbone, Block, SegmentationNet
from .models import NamedModel, load_model, model_names, resolve
from .netbuilder import NetBuilder
from .netio import write_net
from . import zoo

FORMS = ("val", "val_mergebn", "train", "deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn")
IGNORE_LABEL = 255
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is pre-processed (the release's values by default)."""

    val_list: str
    train_source: str
    mean: tuple[float, ...]
    scale: float
    val_batch: int
    train_batch: int
    crop: tuple[int, int]          # classification crop / segmentation training crop
    test_size: tuple[int, int]     # size the validation net sees
    # random scaling and stretching of the training images (the POP fork's img_rand_*)
    rand_h: tuple[int, int] | None = None
    rand_w: tuple[int, int] | None = None
    # The Python layer (module, class) that reads segmentation training pairs: BVLC's
    # ImageData reads one integer label per image.  The training package provides it, so its
    # name comes from the caller (the training code, the generator's command); without it the
    # train form's data layers name no module: enough to analyse or compare the net, not to
    # train it.
    pairs_reader: tuple[str, str] | None = None


IMAGENET = DataConfig(val_list="data/imagenet/val_256xN_list.txt", train_source="data/imagenet/train_lmdb",
                      mean=(104.0, 117.0, 123.0), scale=0.008, val_batch=100, train_batch=64,
                      crop=(224, 224), test_size=(224, 224), rand_h=(256, 320), rand_w=(256, 320))
CITYSCAPES = DataConfig(val_list="data/cityscapes/img_val_1024x2048_list.txt",
                        train_source="data/cityscapes/train_list.txt",
                        mean=(72.0, 83.0, 73.0), scale=0.008, val_batch=1, train_batch=8,
                        crop=(1024, 1024), test_size=(1024, 2048), rand_h=(512, 2048), rand_w=(1024, 4096))

def _model(model: str | NamedModel) -> NamedModel:
    return model if isinstance(model, NamedModel) else resolve(model)


def available_forms(model: str | NamedModel) -> tuple[str, ...]:
    """Every form ``net_for`` can make of ``model``."""
    return zoo.ZOO_FORMS if _model(model).is_zoo else FORMS


def default_forms(model: str | NamedModel) -> tuple[str, ...]:
    """The forms written for a model by default (a zoo net without BatchNorm: no _mergebn)."""
    named = _model(model)
    return zoo.default_forms(named.net) if named.is_zoo else FORMS


def default_data(net) -> DataConfig:
    """The release's data settings for a net: Cityscapes for segmentation, else ImageNet."""
    return CITYSCAPES if isinstance(net, SegmentationNet) else IMAGENET


# ----------------------------------------------------------------------------- data layers

def _transform(layer: caffe_pb2.LayerParameter, data: DataConfig, crop: bool, mirror: bool) -> None:
    t = layer.transform_param
    t.scale = data.scale
    t.mirror = mirror
    if crop:
        if data.crop[0] == data.crop[1]:
            t.crop_size = data.crop[0]
        else:
            t.crop_h, t.crop_w = data.crop
    t.mean_value.extend(data.mean)


def _val_data(data: DataConfig, classification: bool) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name="data", type="ImageData", top=["data", "label"])
    layer.include.add(phase=L.TEST)
    _transform(layer, data, crop=classification, mirror=False)
    p = layer.image_data_param
    p.source = data.val_list
    p.batch_size = data.val_batch
    if classification:
        p.shuffle = False
    return layer


def _seg_pairs_data(data: DataConfig, phase: int) -> caffe_pb2.LayerParameter:
    """Image/label-map pairs: TRAIN crops, scales, stretches and mirrors; TEST reads whole images."""
    layer = caffe_pb2.LayerParameter(name="data", type="Python", top=["data", "label"])
    layer.include.add(phase=phase)
    if data.pairs_reader is not None:
        layer.python_param.module, layer.python_param.layer = data.pairs_reader
    train = phase == L.TRAIN
    params = {"source": data.train_source if train else data.val_list,
              "batch_size": data.train_batch if train else data.val_batch,
              "mean": list(data.mean), "scale": data.scale, "mirror": train, "ignore_label": IGNORE_LABEL}
    if train:
        params["crop"] = list(data.crop)
        if data.rand_h and data.rand_w:
            params.update(rand_h=list(data.rand_h), rand_w=list(data.rand_w))
    layer.python_param.param_str = json.dumps(params, sort_keys=True)
    return layer


def _train_data(data: DataConfig, classification: bool) -> caffe_pb2.LayerParameter:
    if classification:
        layer = caffe_pb2.LayerParameter(name="data", type="Data", top=["data", "label"])
        layer.include.add(phase=L.TRAIN)
        _transform(layer, data, crop=True, mirror=True)
        layer.data_param.source = data.train_source
        layer.data_param.batch_size = data.train_batch
        layer.data_param.backend = caffe_pb2.DataParameter.LMDB
        return layer
    return _seg_pairs_data(data, L.TRAIN)


# ----------------------------------------------------------------------------- bodies

def _classification_body(nb: NetBuilder, bb: Backbone, input_hw: tuple[int, int]) -> tuple[str, list[str]]:
    """Returns the classifier's top and the output top of each stage."""
    stage_tops = backbone(nb, bb)
    window = feature_size(input_hw, OUTPUT_STRIDE)
    x = nb.add(L.ave_pooling("pool5", stage_tops[-1], "pool5", kernel=window, stride=(1, 1)))
    return nb.add(L.inner_product("fc", x, "fc", IMAGENET_CLASSES)), stage_tops


def _segmentation_body(nb: NetBuilder, net: SegmentationNet, train_crop: tuple[int, int],
                       interp: InterpSizes) -> tuple[str, str | None]:
    stage_tops = backbone(nb, net.backbone)
    psp = pyramid_pooling(nb, stage_tops[-1], net.backbone.out_channels, net.pyramid_bins, train_crop, interp)
    return decoder(nb, stage_tops, psp, net.wc_widths, net.num_classes, net.d8)


def _seg_heads(nb: NetBuilder, score: str, score_up: str | None, phase: int | None) -> None:
    if score_up is not None:
        nb.add(L.softmax("prob", score_up, "prob", phase))
        nb.add(L.argmax("pred", "prob", "pred", phase))
    nb.add(L.softmax("prob_d8", score, "prob_d8", phase))
    nb.add(L.argmax("pred_d8", "prob_d8", "pred_d8", phase))


def _aux_classifiers(nb: NetBuilder, stage_tops: list[str], input_hw: tuple[int, int]) -> None:
    """Additional supervision: a pooled linear classifier on stages 3 and 4 (loss weight 0.3)."""
    for s, top in enumerate(stage_tops[:-1]):
        name = f"aux{s + 3}"
        window = feature_size(input_hw, 2 ** (s + 3))
        x = nb.add(L.ave_pooling(f"{name}/pool", top, f"{name}/pool", kernel=window, stride=(1, 1)))
        x = nb.add(L.inner_product(f"{name}/fc", x, f"{name}/fc", IMAGENET_CLASSES))
        nb.add(L.softmax_loss(f"{name}/loss", [x, "label"], f"{name}/loss", loss_weight=0.3, phase=L.TRAIN))


# ----------------------------------------------------------------------------- forms

def _seg_interp(data: DataConfig) -> InterpSizes:
    """The Interp sizes of a segmentation net fed by the data layers (train crop, test size)."""
    return InterpSizes(train=feature_size(data.crop, OUTPUT_STRIDE),
                       test=feature_size(data.test_size, OUTPUT_STRIDE))


def _val_form(nb: NetBuilder, net: Backbone | SegmentationNet, data: DataConfig,
              classification: bool) -> None:
    """The val form: the test data layer, the body, the accuracies (or the seg heads)."""
    nb.add(_val_data(data, classification))
    if classification:
        fc, _ = _classification_body(nb, net, data.crop)
        nb.add(L.accuracy("accuracy/top-1", [fc, "label"], "accuracy/top-1", top_k=1))
        nb.add(L.accuracy("accuracy/top-5", [fc, "label"], "accuracy/top-5", top_k=5))
    else:
        score, up = _segmentation_body(nb, net, data.crop, _seg_interp(data))
        _seg_heads(nb, score, up, L.TEST)


def _train_form(nb: NetBuilder, net: Backbone | SegmentationNet, data: DataConfig,
                classification: bool, aux_heads: bool) -> None:
    """The train form: train and test data layers, the body, the loss, test-phase accuracy."""
    nb.add(_train_data(data, classification))
    nb.add(_val_data(data, classification) if classification else _seg_pairs_data(data, L.TEST))
    if classification:
        fc, stage_tops = _classification_body(nb, net, data.crop)
        if aux_heads:
            _aux_classifiers(nb, stage_tops, data.crop)
        nb.add(L.softmax_loss("loss", [fc, "label"], "loss"))
        nb.add(L.accuracy("accuracy/top-1", [fc, "label"], "accuracy/top-1", top_k=1, phase=L.TEST))
        nb.add(L.accuracy("accuracy/top-5", [fc, "label"], "accuracy/top-5", top_k=5, phase=L.TEST))
    else:
        # -d8 models share the trained weights of their full-resolution model: train at x8.
        full = replace(net, d8=False)
        score, up = _segmentation_body(nb, full, data.crop, _seg_interp(data))
        nb.add(L.softmax_loss("loss", [up, "label"], "loss", ignore_label=IGNORE_LABEL))
        nb.add(L.accuracy("accuracy", [up, "label"], "accuracy", phase=L.TEST, ignore_label=IGNORE_LABEL))


def _input_form(nb: NetBuilder, net: Backbone | SegmentationNet, data: DataConfig,
                classification: bool, kind: str, input_hw: tuple[int, int], batch: int) -> None:
    """The deploy and caffetime forms: an Input layer of ``input_hw``; deploy adds the
    softmax / seg heads, caffetime times the body alone."""
    nb.add(L.input_layer((batch, 3, *input_hw)))
    if classification:
        fc, _ = _classification_body(nb, net, input_hw)
        if kind == "deploy":
            nb.add(L.softmax("prob", fc, "prob"))
    else:
        feature = feature_size(input_hw, OUTPUT_STRIDE)
        interp = (InterpSizes(None, None, single=feature) if kind == "deploy"
                  else InterpSizes(train=feature, test=feature))
        score, up = _segmentation_body(nb, net, data.crop, interp)
        if kind == "deploy":
            _seg_heads(nb, score, up, None)


def net_for(model: str | NamedModel, form: str = "val", input_size: tuple[int, int] | None = None,
            data: DataConfig | None = None, aux_heads: bool = False, batch: int = 1) -> caffe_pb2.NetParameter:
    """The network of ``model`` (name, encoding or NamedModel) in ``form``.

    ``input_size`` is the HxW of deploy/caffetime forms (default: the data's test size);
    ``data`` overrides list paths, crops and sizes of val/train forms.
    """
    named = _model(model)
    if form not in available_forms(named):
        raise ValueError(f"unknown form {form!r} of {named.name} (forms: {', '.join(available_forms(named))})")
    if named.is_zoo:
        return zoo.build_net(named.net, form, input_size, batch)
    net = named.net
    data = data or default_data(net)
    classification = not isinstance(net, SegmentationNet)
    kind = form.removesuffix("_mergebn")
    input_hw = tuple(input_size) if input_size else data.test_size
    nb = NetBuilder(merge_bn=form.endswith("_mergebn"))
    if kind == "val":
        _val_form(nb, net, data, classification)
    elif kind == "train":
        _train_form(nb, net, data, classification, aux_heads)
    else:  # deploy, caffetime
        _input_form(nb, net, data, classification, kind, input_hw, batch)
    return nb.net


# ----------------------------------------------------------------------------- profiling nets

def block_net(blk: Block, in_channels: int, in_hw: tuple[int, int], stride: int, projection: bool,
              merge_bn: bool = True) -> caffe_pb2.NetParameter:
    """One residual block fed by an Input layer: a latency look-up-table entry."""
    nb = NetBuilder(merge_bn=merge_bn)
    nb.add(L.input_layer((1, in_channels, *in_hw)))
    block(nb, "block", "data", blk, stride, projection)
    return nb.net


def stem_net(in_hw: tuple[int, int], merge_bn: bool = True) -> caffe_pb2.NetParameter:
    nb = NetBuilder(merge_bn=merge_bn)
    nb.add(L.input_layer((1, 3, *in_hw)))
    stem(nb)
    return nb.net


def head_net(in_channels: int, in_hw: tuple[int, int], num_classes: int = IMAGENET_CLASSES) -> caffe_pb2.NetParameter:
    nb = NetBuilder(merge_bn=True)
    nb.add(L.input_layer((1, in_channels, *in_hw)))
    x = nb.add(L.ave_pooling("pool5", "data", "pool5", kernel=in_hw, stride=(1, 1)))
    nb.add(L.inner_product("fc", x, "fc", num_classes))
    return nb.net


# ----------------------------------------------------------------------------- files

def to_text(net: caffe_pb2.NetParameter) -> str:
    return text_format.MessageToString(net)


def form_filename(name: str, form: str) -> str:
    return f"{name}.prototxt" if form == "val" else f"{name}_{form.removeprefix('val_')}.prototxt"


def write_all(model: str | NamedModel, out_dir: str | Path, input_size: tuple[int, int] | None = None,
              data: DataConfig | None = None) -> dict[str, Path]:
    """Write every form of ``model`` into ``out_dir``; returns {form: path}."""
    named = _model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for form in default_forms(named):
        path = out / form_filename(named.name, form)
        written[form] = write_net(net_for(named, form, input_size=input_size, data=data), path)
    return written


def write_release_set(out_dir: str | Path) -> list[Path]:
    """Every file of the authors' release, under the release's own file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in model_names():
        model = load_model(name)
        for kind, filename in model.release_files.items():
            form = "val" if kind == "bn" else "val_mergebn"
            written.append(write_net(net_for(model, form), out / filename))
    return written
