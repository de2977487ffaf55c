"""Named models: the DF nets (``caffe_models/*.yaml``) resolved into encodings, and the
paper's comparison nets (``caffe_models/zoo/*.yaml``, built by :mod:`prototxt_gen.zoo`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dfseg.base.textfile import TextFileError, read_yaml

from .encoding import Backbone, EncodingError, SegmentationNet, parse_backbone, parse_encoding
from .zoo import ZooNet, zoo_net

MODELS_DIR = Path(__file__).resolve().parent.parent / "caffe_models"
ZOO_DIR = MODELS_DIR / "zoo"


class UnknownModelError(LookupError):
    pass


@dataclass(frozen=True)
class NamedModel:
    name: str
    display_name: str
    net: Backbone | SegmentationNet | ZooNet
    release_files: dict = field(default_factory=dict)  # {"bn": file, "mergebn": file}

    @property
    def is_segmentation(self) -> bool:
        return isinstance(self.net, SegmentationNet) or (isinstance(self.net, ZooNet)
                                                         and self.net.is_segmentation)

    @property
    def is_zoo(self) -> bool:
        return isinstance(self.net, ZooNet)


def model_names() -> list[str]:
    """The DF models (encodings; every form of the release)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def zoo_names() -> list[str]:
    """The comparison nets of prototxt_gen.zoo (deploy and caffetime forms)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def _model_path(name: str) -> Path:
    for path in (MODELS_DIR / f"{name}.yaml", ZOO_DIR / f"{name}.yaml"):
        if path.is_file():
            return path
    raise UnknownModelError(f"unknown model {name!r} (known: {', '.join(model_names() + zoo_names())})")


def _load_yaml(path: Path) -> dict:
    try:
        return read_yaml(path, "model (YAML)", mapping=True)
    except TextFileError as e:
        raise EncodingError(str(e)) from None


def load_model(name: str) -> NamedModel:
    path = _model_path(name)
    data = _load_yaml(path)
    if path.parent == ZOO_DIR:
        return NamedModel(name=name, display_name=data.get("display_name", name), net=zoo_net(data, str(path)))
    try:
        if "base" in data:
            base = load_model(data["base"])
            assert isinstance(base.net, SegmentationNet), f"{path}: base must be a segmentation model"
            net = SegmentationNet(base.net.backbone, base.net.wc, base.net.num_classes, d8=bool(data.get("d8")))
        elif data.get("task") == "segmentation":
            backbone = load_model(data["backbone_model"]).net
            net = SegmentationNet(backbone, tuple(data["wc"]), int(data.get("num_classes", 19)),
                                  d8=bool(data.get("d8", False)))
        else:
            net = parse_backbone(data["backbone"])
    except EncodingError as e:
        raise EncodingError(f"{path}: {e}") from None
    except KeyError as e:
        raise EncodingError(f"{path}: missing key {e.args[0]!r}") from None
    return NamedModel(name=data["name"], display_name=data.get("display_name", name), net=net,
                      release_files=dict(data.get("release_files") or {}))


def resolve(name_or_encoding: str, num_classes: int = 19) -> NamedModel:
    """A model name from caffe_models/, or an encoding in the text form."""
    if name_or_encoding.lstrip().startswith("["):
        net = parse_encoding(name_or_encoding, num_classes)
        return NamedModel(name="custom", display_name=str(net), net=net)
    return load_model(name_or_encoding)
