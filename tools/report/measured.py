"""The figures measured on this project's machines: one JSON results file per engine under
``--bench`` (written by the benches; the schema is in `load_measured` and docs/tables.md)."""
from __future__ import annotations

import re
from pathlib import Path

from dfseg.base.textfile import TextFileError, read_json

from .log_figures import model_key

# Engines whose measurements `make tables` shows, and the file each writes (under --bench).
MEASURED_ENGINES = [
    ("caffe_cpu", "caffe time (CPU, here)", "results.json"),
    ("onnxruntime", "ONNX Runtime (CPU, here)", "onnxruntime.json"),
    ("tensorrt", "TensorRT (here)", "tensorrt.json"),
]


class MeasuredFormatError(ValueError):
    pass


def load_measured(path: Path) -> dict[tuple[str, str], float] | None:
    """Read one measured-results file: ``{"models": {MODEL: {"resolution": {"HxW": {"forward_ms":
    ms, "fps": fps}}}}}`` (optional top-level "engine", "device"; the "resolution" level may be
    left out; a resolution entry may give "median_ms" or "ms" instead of "forward_ms", or only
    "fps").  MODEL is a paper name or a
    generator name (DF1-Seg-d8 or df1seg_d8); HxW is height x width.  Returns
    {(model_key, "HxW"): ms}, or None when the file does not exist."""
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
        if resolutions is None and isinstance(entry, dict) and entry and all(
                re.fullmatch(r"\d+x\d+", k) for k in entry):
            resolutions = entry   # {"HxW": {...}} directly under the model is read the same
        if not isinstance(resolutions, dict):
            raise MeasuredFormatError(f"{path}: models.{name} lacks a \"resolution\" object")
        for res, timing in resolutions.items():
            if not re.fullmatch(r"\d+x\d+", res) or not isinstance(timing, dict):
                raise MeasuredFormatError(f"{path}: models.{name}.resolution.{res}: expected \"HxW\": {{...}}")
            ms = next((timing[k] for k in ("forward_ms", "median_ms", "ms") if isinstance(timing.get(k), (int, float))), None)
            if ms is None and isinstance(timing.get("fps"), (int, float)) and timing["fps"] > 0:
                ms = 1000.0 / timing["fps"]
            if ms is None or ms <= 0:
                raise MeasuredFormatError(f"{path}: models.{name}.resolution.{res} has no positive "
                                          f"forward_ms / median_ms / ms / fps")
            out[(model_key(name), res)] = float(ms)
    return out
