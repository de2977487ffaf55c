"""Named models: the DF nets (``caffe_models/*.yaml``) resolved into encodings, and the
paper's comparison nets (``caffe_models/zoo/*.yaml``, built by :mod:`prototxt_gen.zoo`).

The YAML files are the data package ``caffe_models``, read through ``importlib.resources`` so
that an installed dfseg (``pip install .``, not only a checkout) finds them."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_yaml

from .encoding import Backbone, EncodingError, SegmentationNet, parse_backbone, parse_encoding
from .zoo import ZooNet, zoo_net

MODELS_DIR: Traversable = resources.files("caffe_models")
ZOO_DIR: Traversable = MODELS_DIR / "zoo"


class UnknownModelError(InputError, LookupError):
    """A model name that is neither in caffe_models/ nor in caffe_models/zoo/."""


class ModelFileError(EncodingError):  # EncodingError is an InputError
    """A named model's YAML file that cannot be read or whose fields make no model."""


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


def _yaml_stems(folder: Traversable) -> list[str]:
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml") and p.is_file())


def model_names() -> list[str]:
    """The DF models (encodings; every form of the release)."""
    return _yaml_stems(MODELS_DIR)


def zoo_names() -> list[str]:
    """The comparison nets of prototxt_gen.zoo (deploy and caffetime forms)."""
    return _yaml_stems(ZOO_DIR)


def _model_path(name: str) -> tuple[Traversable, bool]:
    """(the model's YAML file, whether it is a comparison net of the zoo)."""
    for path, zoo in ((MODELS_DIR / f"{name}.yaml", False), (ZOO_DIR / f"{name}.yaml", True)):
        if path.is_file():
            return path, zoo
    raise UnknownModelError(f"unknown model {name!r} (known: {', '.join(model_names() + zoo_names())})")


def _load_yaml(path: Traversable) -> dict:
    try:
        return read_yaml(path, "model (YAML)", mapping=True)
    except TextFileError as e:
        raise ModelFileError(str(e)) from None


def load_model(name: str) -> NamedModel:
    path, zoo = _model_path(name)
    data = _load_yaml(path)
    if zoo:
        return NamedModel(name=name, display_name=data.get("display_name", name), net=zoo_net(data, str(path)))
    try:
        if "base" in data:
            base = load_model(data["base"])
            if not isinstance(base.net, SegmentationNet):   # checked in every run (an assert is gone under -O)
                raise ModelFileError(f"base {data['base']!r} is not a DF-Seg model (a base must be one)")
            net = SegmentationNet(base.net.backbone, base.net.wc, base.net.num_classes, d8=bool(data.get("d8")))
        elif data.get("task") == "segmentation":
            backbone = load_model(data["backbone_model"]).net
            net = SegmentationNet(backbone, tuple(data["wc"]), int(data.get("num_classes", 19)),
                                  d8=bool(data.get("d8", False)))
        else:
            net = parse_backbone(data["backbone"])
    except EncodingError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except KeyError as e:
        raise ModelFileError(f"{path}: missing key {e.args[0]!r}") from None
    return NamedModel(name=data["name"], display_name=data.get("display_name", name), net=net,
                      release_files=dict(data.get("release_files") or {}))


def resolve(name_or_encoding: str, num_classes: int = 19) -> NamedModel:
    """A model name from caffe_models/, or an encoding in the text form."""
    if name_or_encoding.lstrip().startswith("["):
        net = parse_encoding(name_or_encoding, num_classes)
        return NamedModel(name="custom", display_name=str(net), net=net)
    return load_model(name_or_encoding)
