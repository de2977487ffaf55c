"""Decoder search (paper Section 3.5): the same Algorithm 1 over the width controllers
``[C3, C4, C5]`` of DF-Seg for a fixed backbone.

Settings are ordered elementwise (narrower ≺ wider): each controller is a "stage" holding
exactly one "block" whose choice index is its width rank, so :mod:`pop.order`'s suffix-count
keys apply unchanged.  Latencies are whole-network measurements per setting (the decoder's
cost depends on the feature resolutions of all three branches together); they are given in
the decoder space file::

    decoder:
      backbone: "[(64,64,64),(128,128,128),(256,256,256,512)]"
      num_classes: 19
      wc_choices: [K, 32, 64, 128, 256, 512]
      latency_ms: {"K,32,128": 14.0, ...}      # one entry per setting to search
      window_ms: [0, 30]                       # optional [Tmin, Tmax]

``pop lut decoder`` writes this file by profiling every setting's whole network (the
generator's ``caffetime_mergebn`` form at the given input size) on a backend, incrementally,
with the platform recorded (``platform``, ``input_size``, ``d8`` are kept in the file).
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from prototxt_gen.encoding import SegmentationNet, parse_backbone, EncodingError
from prototxt_gen.generate import CITYSCAPES, net_for
from dfseg.base.atomic import atomic_write_text
from dfseg.base.textfile import TextFileError, read_yaml

from .lut import LutError, same_platform
from .space_config import SpaceError


def is_decoder_space(data: dict) -> bool:
    return isinstance(data, dict) and "decoder" in data


class DecoderSpace:
    kind = "decoder"

    def __init__(self, backbone: str, num_classes: int, choices: list, settings: list[tuple], latency: np.ndarray,
                 data: dict):
        self.backbone = parse_backbone(backbone)
        self.num_classes = num_classes
        self.choices = choices
        self.settings = settings
        self.latency = latency
        self.data = data
        widths = [num_classes if c == "K" else int(c) for c in choices]
        self.rank = {c: r for r, c in enumerate(sorted(choices, key=lambda c: widths[choices.index(c)]))}

    @staticmethod
    def from_dict(data: dict, table=None) -> "DecoderSpace":
        d = data.get("decoder")
        if not isinstance(d, dict) or "backbone" not in d or "latency_ms" not in d:
            raise SpaceError("decoder space: needs 'decoder' with 'backbone' and 'latency_ms'")
        num_classes = int(d.get("num_classes", 19))
        choices = [c if c == "K" else int(c) for c in d.get("wc_choices", ["K", 32, 64, 128, 256, 512])]
        lo, hi = d.get("window_ms", [0.0, float("inf")])
        d8 = bool(d.get("d8", False))
        settings, lats = [], []
        for text, lat in d["latency_ms"].items():
            wc = tuple(c if c == "K" else int(c) for c in (p.strip() for p in str(text).strip("[]").split(",")))
            if len(wc) != 3 or any(c not in choices for c in wc):
                raise SpaceError(f"decoder space: setting {text!r} is not [C3,C4,C5] over {choices}")
            if lo <= float(lat) <= hi:
                settings.append(wc)
                lats.append(float(lat))
        try:
            SegmentationNet(parse_backbone(d["backbone"]), ("K", "K", "K"), num_classes)
        except EncodingError as e:
            raise SpaceError(f"decoder space: backbone: {e}")
        order = np.argsort(lats, kind="stable")
        space = DecoderSpace(d["backbone"], num_classes, choices, [settings[i] for i in order],
                             np.asarray(lats, float)[order], data)
        space.d8 = d8
        return space

    @property
    def size(self) -> int:
        return len(self.settings)

    def __len__(self) -> int:
        return self.size

    def order_keys(self) -> np.ndarray:
        n = len(self.choices)
        keys = np.zeros((self.size, 3 * n), np.uint8)
        for i, wc in enumerate(self.settings):
            for j, c in enumerate(wc):
                keys[i, j * n: j * n + self.rank[c] + 1] = 1  # suffix counts of a one-block stage
        return keys

    d8 = False

    def net(self, i: int) -> SegmentationNet:
        return SegmentationNet(self.backbone, self.settings[i], self.num_classes, d8=self.d8)

    def encoding(self, i: int) -> str:
        return str(self.net(i))

    def encodings(self, indices=None) -> list[str]:
        return [self.encoding(int(i)) for i in (range(self.size) if indices is None else indices)]


def all_settings(choices) -> list[tuple]:
    return list(itertools.product(choices, repeat=3))


def setting_key(wc) -> str:
    return ",".join(str(c) for c in wc)


def measure(backbone: str, num_classes: int, choices: list, input_size: tuple[int, int], backend,
            out: Path, d8: bool = False, progress: bool = True) -> dict:
    """Profile every [C3,C4,C5] setting's whole DF-Seg net; keeps what `out` already has
    (same platform, backbone, size) and saves after each setting."""
    here = backend.platform()
    # pooling windows follow the training crop in the generator: use the profiled size
    data_cfg = dataclasses.replace(CITYSCAPES, crop=tuple(input_size), test_size=tuple(input_size))
    doc = {"decoder": {"backbone": str(parse_backbone(backbone)), "num_classes": num_classes,
                       "wc_choices": list(choices), "input_size": list(input_size), "d8": d8,
                       "platform": here, "latency_ms": {}}}
    if out.exists():
        try:
            old = read_yaml(out, "decoder space file", mapping=True).get("decoder")
        except TextFileError as e:
            raise SpaceError(str(e)) from None
        if not isinstance(old, dict):
            raise SpaceError(f"{out}: not a decoder space file (no 'decoder' mapping)")
        diff = same_platform(old.get("platform", {}), here)
        if diff:
            raise LutError(f"{out}: measured on another platform ({', '.join(diff)} differ)")
        for field in ("backbone", "num_classes", "input_size", "d8"):
            if old.get(field) != doc["decoder"][field]:
                raise SpaceError(f"{out}: was measured for {field} = {old.get(field)!r}, not {doc['decoder'][field]!r}")
        doc["decoder"]["latency_ms"] = dict(old.get("latency_ms", {}))
    todo = [wc for wc in all_settings(choices) if setting_key(wc) not in doc["decoder"]["latency_ms"]]
    for wc in tqdm(todo, desc="profiling decoders", unit="net", disable=not progress):
        net = SegmentationNet(parse_backbone(backbone), wc, num_classes, d8=d8)
        ms = backend.time_net(net_for(str(net), "caffetime_mergebn", input_size=tuple(input_size), data=data_cfg))
        doc["decoder"]["latency_ms"][setting_key(wc)] = float(ms)
        atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))   # an interruption keeps what is measured
    if not out.exists():
        atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))
    return doc
