"""The figures measured on this project's machines: one JSON results file per engine under
``--bench``, written by the benches in the one timing schema (tools.report.timings)."""
from __future__ import annotations

import re
from pathlib import Path

from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_json

from .log_figures import model_key
from .timings import TimingSchemaError, checked_median

# Engines whose measurements `make tables` shows, and the file each writes (under --bench).
MEASURED_ENGINES = [
    ("caffe_cpu", "caffe time (CPU, here)", "results.json"),
    ("onnxruntime", "ONNX Runtime (CPU, here)", "onnxruntime.json"),
    ("tensorrt", "TensorRT (here)", "tensorrt.json"),
]


class MeasuredFormatError(InputError, ValueError):
    pass


def load_measured(path: Path) -> dict[tuple[str, str], float] | None:
    """Read one measured-results file: ``{"models": {MODEL: {"resolution": {"HxW": timing
    record}}}}`` (tools.report.timings; other keys are for people).  MODEL is a paper name or a
    generator name (DF1-Seg-d8 or df1seg_d8); HxW is height x width.  Returns
    {(model_key, "HxW"): median ms}, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = read_json(path, "measured result (JSON)")
    except TextFileError as exc:
        raise MeasuredFormatError(str(exc)) from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise MeasuredFormatError(f"{path}: expected an object with a \"models\" object")
    out = {}
    for name, entry in models.items():
        resolutions = entry.get("resolution") if isinstance(entry, dict) else None
        if not isinstance(resolutions, dict):
            raise MeasuredFormatError(f"{path}: models.{name} lacks a \"resolution\" object")
        for res, timing in resolutions.items():
            if not re.fullmatch(r"\d+x\d+", res):
                raise MeasuredFormatError(f"{path}: models.{name}.resolution.{res}: expected \"HxW\"")
            try:
                ms = checked_median(timing, f"{path}: models.{name}.resolution.{res}")
            except TimingSchemaError as exc:
                raise MeasuredFormatError(str(exc)) from None
            out[(model_key(name), res)] = ms
    return out
