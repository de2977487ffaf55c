"""The paper's comparison nets (Table 1 backbones; Tables 3-5 and Fig. 1 segmentation nets) as named models.

Each is described as data in ``caffe_models/zoo/<name>.yaml``: a ``family`` (which builder
reads it), the task, the class count, the default input size and an ``architecture``
mapping of the family's hyper-parameters (stage widths, block counts, ...); the builders
of this package turn it into a ``NetParameter``.  Forms: ``deploy`` (Input layer, Softmax
and for segmentation ArgMax heads) and ``caffetime`` (no heads), each also ``_mergebn``
(BatchNorm folded into the convolutions; for a net without BatchNorm the same net).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from dfseg.base.sizes import SizeError, parse_hxw

from .. import caffe_pb2
from .. import layers as L
from ..encoding import EncodingError
from ..netbuilder import NetBuilder
from . import bisenet, deeplab, enet, espnet, googlenet, mobilenet, pspnet, resnet, segnet, shufflenet

Builder = Callable[[NetBuilder, dict, int, tuple[int, int]], str]

# family -> (task, builder returning the score / logits top)
FAMILIES: dict[str, tuple[str, Builder]] = {
    "resnet": ("classification", resnet.build),
    "googlenet": ("classification", googlenet.build),
    "mobilenet_v1": ("classification", mobilenet.build_v1),
    "mobilenet_v2": ("classification", mobilenet.build_v2),
    "shufflenet_v1": ("classification", shufflenet.build_v1),
    "shufflenet_v2": ("classification", shufflenet.build_v2),
    "segnet": ("segmentation", segnet.build),
    "enet": ("segmentation", enet.build),
    "bisenet": ("segmentation", bisenet.build),
    "espnet": ("segmentation", espnet.build),
    "pspnet": ("segmentation", pspnet.build),
    "deeplab": ("segmentation", deeplab.build),
}
ZOO_FORMS = ("deploy", "deploy_mergebn", "caffetime", "caffetime_mergebn")


class ZooSpecError(EncodingError):
    """An architecture mapping its builder cannot read (the message names the key)."""


@dataclass(frozen=True)
class ZooNet:
    name: str
    family: str
    num_classes: int
    input_hw: tuple[int, int]
    architecture: dict = field(hash=False, compare=False)

    @property
    def task(self) -> str:
        return FAMILIES[self.family][0]

    @property
    def is_segmentation(self) -> bool:
        return self.task == "segmentation"

    def __str__(self) -> str:
        return f"{self.family} ({self.task}, {self.num_classes} classes)"


def zoo_net(data: dict, source: str) -> ZooNet:
    """A ZooNet from a model YAML's mapping; ``source`` names the file in errors."""
    family = data.get("family")
    if family not in FAMILIES:
        raise ZooSpecError(f"{source}: unknown family {family!r} (known: {', '.join(FAMILIES)})")
    try:
        hw = parse_hxw(str(data["input"]))
        net = ZooNet(name=data["name"], family=family, num_classes=int(data["num_classes"]),
                     input_hw=hw, architecture=dict(data["architecture"]))
    except KeyError as e:
        raise ZooSpecError(f"{source}: missing key {e.args[0]!r}") from None
    except (SizeError, TypeError, ValueError) as e:
        raise ZooSpecError(f"{source}: {e}") from None
    build_net(net, "deploy")   # the architecture must build: report a bad one on loading
    return net


def _heads(nb: NetBuilder, score: str, segmentation: bool) -> None:
    nb.add(L.softmax("prob", score, "prob"))
    if segmentation:
        nb.add(L.argmax("pred", "prob", "pred"))


def build_net(net: ZooNet, form: str = "deploy", input_size: tuple[int, int] | None = None,
              batch: int = 1) -> caffe_pb2.NetParameter:
    """``net`` in ``form`` at ``input_size`` (HxW; default the model's own)."""
    if form not in ZOO_FORMS:
        raise ValueError(f"{net.name} has the forms {', '.join(ZOO_FORMS)}, not {form!r}")
    hw = tuple(input_size) if input_size else net.input_hw
    nb = NetBuilder(merge_bn=form.endswith("_mergebn"))
    nb.net.name = net.name
    nb.add(L.input_layer((batch, 3, *hw)))
    try:
        score = FAMILIES[net.family][1](nb, net.architecture, net.num_classes, hw)
    except KeyError as e:
        raise ZooSpecError(f"{net.name}: architecture: missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise ZooSpecError(f"{net.name}: {e}") from None
    if form.removesuffix("_mergebn") == "deploy":
        _heads(nb, score, net.is_segmentation)
    return nb.net


def has_batch_norm(net: ZooNet) -> bool:
    return any(layer.type == "BatchNorm" for layer in build_net(net).layer)


def default_forms(net: ZooNet) -> tuple[str, ...]:
    """What ``make NAME`` writes: merged-BN forms only for a net that has BatchNorm."""
    return ZOO_FORMS if has_batch_norm(net) else ("deploy", "caffetime")
