"""The one registry of benchmarked models: every named model of caffe_models/*.yaml (DF
backbones, DF-Seg), the paper's comparison nets of caffe_models/zoo/*.yaml (ResNet, GoogLeNet,
MobileNet, ShuffleNet, SegNet, ENet) and ICNet, the head-to-head baseline read from the
reference prototxts.  The Makefile, the benches and the tables ask here which
models exist, what the paper calls them and which net to time at a size.

A model runs at the smallest size >= the asked one it accepts (the image zero-padded): DF-Seg's
decoder joins 1/32, 1/16 and 1/8 features, so its sides are multiples of 32 (Table 4's 360
rows run as 384); ICNet's branches line up at 32k + 1 (its evaluation size is 1025x2049).
"""
from __future__ import annotations

import os
from pathlib import Path

from dfseg.base.errors import InputError
from prototxt_gen import caffe_pb2
from prototxt_gen.generate import default_forms, net_for
from prototxt_gen.models import UnknownModelError, load_model, model_names as yaml_model_names, zoo_names
from tools.export.caffe_net import CaffeNetError
from tools.export.reference_nets import icnet_deploy, icnet_input_size

__all__ = ["ICNET", "RegistryError", "model_names", "display_name", "run_size", "timing_net",
           "reference_root", "segmentation_models", "comparison_models"]

ICNET = "icnet"
STRIDE = 32


class RegistryError(InputError, ValueError):
    """An unknown model name or a reference file that is not there."""


def reference_root() -> Path:
    """The reference material (ICNet's prototxts, paper_tables.yaml, the release's logs):
    ``$DFSEG_REFERENCE``, by default ``shared/reference`` beside the checkout."""
    repo = Path(__file__).resolve().parents[2]   # tools/models/registry.py -> the checkout
    return Path(os.environ.get("DFSEG_REFERENCE", repo.parent / "shared" / "reference"))


def model_names() -> list[str]:
    return [*yaml_model_names(), *zoo_names(), ICNET]


def _named(name: str):
    try:
        return load_model(name)
    except UnknownModelError as err:
        raise RegistryError(f"unknown model {name!r} (known: {', '.join(model_names())})") from None


def segmentation_models() -> list[str]:
    """The DF-Seg models (the comparison nets are listed by zoo_names)."""
    return [n for n in yaml_model_names() if _named(n).is_segmentation]


def comparison_models() -> list[str]:
    return zoo_names()


def display_name(name: str) -> str:
    """The paper's name of a model (``df1seg`` -> ``DF1-Seg``)."""
    return "ICNet" if name == ICNET else _named(name).display_name


def run_size(name: str, hw: tuple[int, int]) -> tuple[int, int]:
    if name == ICNET:
        return icnet_input_size(hw)
    named = _named(name)
    if named.is_zoo or not named.is_segmentation:
        return tuple(hw)     # backbones and the comparison nets take the size they are given
    return tuple(-(-side // STRIDE) * STRIDE for side in hw)


def timing_net(name: str, hw: tuple[int, int]) -> tuple[caffe_pb2.NetParameter, tuple[int, int]]:
    """(the net an engine times, the size it runs at) for model `name` asked at `hw`: the
    merged-BN ``caffe time`` form of a named model, ICNet's merged-BN evaluation net."""
    run_hw = run_size(name, hw)
    if name == ICNET:
        ref = reference_root()
        if not (ref / "icnet" / "icnet_cityscapes.prototxt").is_file():
            raise RegistryError(f"ICNet prototxt not found under {ref}/icnet (set DFSEG_REFERENCE)")
        try:
            return icnet_deploy(ref, run_hw), run_hw
        except CaffeNetError as err:
            raise RegistryError(str(err)) from None
    form = "caffetime_mergebn" if "caffetime_mergebn" in default_forms(name) else "caffetime"
    return net_for(name, form, input_size=run_hw), run_hw
