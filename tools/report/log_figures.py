"""The figures a directory of logs gives: which log gives which figure is decided by its file
name (the release's naming, `LOG_NAMING`; docs/tables.md), and each log is read by the one
parser of its kind (tools.report.log_parsers, tools.report.cityscapes_log)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .cityscapes_log import parse_cityscapes_eval
from .log_parsers import LogParseError, parse_caffe_test, parse_caffe_time, parse_tensorrt_profile, read_log

# ------------------------------------------------------------------------ log naming
#
# <model> is the model's name in lower case with "-" written as "_" or dropped
# (df1seg, df1seg_d8, dflite_seg, df2seg1, df1, df2a, icnet); an optional "_mergebn" after it
# is ignored.  <HxW> is height x width in pixels; <device> is e.g. titanx, 1080ti, tx2.
LOG_NAMING = [
    # caffe time of the whole net: Titan X "caffe time" column (input size from the log).
    ("caffe_time", re.compile(
        r"^log_(?P<model>.+?)(?:_mergebn)?_caffetime(?:_(?P<res>\d+x\d+))?_(?P<device>[a-z0-9]+)\.(?:txt|log)$")),
    # TensorRT profile; "scoreup8" times the net with its final x8 up-sampling (the full
    # model), "score" stops at the 1/8-resolution score map, which is the -d8 model.
    ("tensorrt_profile", re.compile(
        r"^log_(?P<model>.+?)(?:_mergebn)?_profile_(?P<output>scoreup8|score)_(?P<res>\d+x\d+)"
        r"_(?P<device>[a-z0-9]+)\.(?:txt|log)$")),
    # Cityscapes evaluation output of the model's predictions on a split.  The release's
    # "pred_d8_u8_<model>" files score the 1/8-resolution prediction (d8) up-sampled x8 (u8)
    # for evaluation: the <model>-d8 net's mIoU.
    ("cityscapes_eval", re.compile(
        r"^pred_(?P<d8>d8_u8_)?(?P<model>.+?)(?:_mergebn)?_(?P<split>val|test|train)\.(?:txt|log)$")),
    # caffe test of a backbone on ImageNet val: top-1.
    ("caffe_test", re.compile(r"^log_(?P<model>.+?)(?:_mergebn)?_(?P<split>val|test)\.(?:txt|log)$")),
]


def model_key(name: str) -> str:
    """Spelling-independent model key: "DF1-Seg-d8", "df1seg_d8", "df1segd8" -> "df1segd8"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass
class Figure:
    value: float          # ms for timings, percent for accuracies
    source: str           # log file name
    note: str = ""


@dataclass
class LogFigures:
    """Everything read from a log directory."""
    accuracy: dict = field(default_factory=dict)   # (model, "miou_val" | "miou_test" | "top1") -> Figure (percent)
    timing: dict = field(default_factory=dict)     # (model, platform, "HxW") -> Figure (ms)
    skipped: list = field(default_factory=list)    # (file, reason)
    used: list = field(default_factory=list)       # (file, what it gave)


def _resolution_of(shape: list[int] | None) -> str | None:
    return f"{shape[2]}x{shape[3]}" if shape and len(shape) == 4 else None


def _naming_of(name: str):
    """(kind, match) of the first LOG_NAMING rule the file name follows, else (None, None)."""
    return next(((k, rx.match(name)) for k, rx in LOG_NAMING if rx.match(name)), (None, None))


def _model_named(kind: str, m: re.Match, by_key: dict, figs: LogFigures, name: str) -> str | None:
    """The known model a log's name gives (its -d8 variant where the name says so), or None
    with the reason added to `figs.skipped`."""
    token = model_key(m["model"])
    if kind == "tensorrt_profile" and m["output"] == "score" and not token.endswith("d8"):
        token += "d8"
    elif kind == "tensorrt_profile" and m["output"] == "scoreup8" and token.endswith("d8"):
        figs.skipped.append((name, "a -d8 model has no x8 up-sampling to time (scoreup8)"))
        return None
    elif kind == "cityscapes_eval" and m["d8"] and not token.endswith("d8"):
        token += "d8"
    model = by_key.get(token)
    if model is None:
        figs.skipped.append((name, f"unknown model {m['model']!r}"))
    return model


def _read_caffe_time(figs: LogFigures, name: str, text: str, model: str, m: re.Match) -> None:
    r = parse_caffe_time(text, name)
    res = m["res"] or _resolution_of(r["input_shape"])
    if res is None:
        raise LogParseError(name, "input size neither in the name nor in the log's Top shape lines")
    key = (model, f"{m['device']}_caffe", res)
    _put(figs.timing, key, Figure(r["forward_ms"], name, f"{r['iterations']} iterations"), figs)
    figs.used.append((name, f"{model}: caffe time {res} on {m['device']}: {r['forward_ms']:g} ms"))


def _read_tensorrt_profile(figs: LogFigures, name: str, text: str, model: str, m: re.Match) -> None:
    r = parse_tensorrt_profile(text, name)
    key = (model, f"{m['device']}_tensorrt", m["res"])
    _put(figs.timing, key, Figure(r["total_ms"], name, f"output {m['output']}"), figs)
    figs.used.append((name, f"{model}: TensorRT {m['res']} on {m['device']}: {r['total_ms']:g} ms"))


def _read_cityscapes_eval(figs: LogFigures, name: str, text: str, model: str, m: re.Match) -> None:
    r = parse_cityscapes_eval(text, name)
    _put(figs.accuracy, (model, f"miou_{m['split']}"), Figure(r["miou"] * 100, name), figs)
    figs.used.append((name, f"{model}: mIoU {m['split']} {r['miou'] * 100:.1f}"))


def _read_caffe_test(figs: LogFigures, name: str, text: str, model: str, m: re.Match) -> None:
    r = parse_caffe_test(text, name)
    if r["top1"] is None:
        raise LogParseError(name, "no top-1 accuracy output")
    _put(figs.accuracy, (model, "top1"), Figure(r["top1"] * 100, name, f"{r['batches']} batches"), figs)
    figs.used.append((name, f"{model}: top-1 {r['top1'] * 100:.2f}"))


# The reader of each LOG_NAMING kind: it adds the log's figure to `figs` or raises LogParseError.
_READERS = {"caffe_time": _read_caffe_time, "tensorrt_profile": _read_tensorrt_profile,
            "cityscapes_eval": _read_cityscapes_eval, "caffe_test": _read_caffe_test}


def read_logs(log_dir: Path, known_models: list[str], progress: bool = True) -> LogFigures:
    """Read every log of `log_dir` whose name follows LOG_NAMING.  Files that do not, name an
    unknown model, or lack their figure are listed in `skipped` with the reason."""
    from tqdm import tqdm

    by_key = {model_key(m): m for m in known_models}
    figs = LogFigures()
    files = sorted(p for p in log_dir.iterdir() if p.is_file())
    for path in tqdm(files, desc="logs", unit="file", disable=not progress):
        kind, m = _naming_of(path.name)
        if kind is None:
            figs.skipped.append((path.name, "name follows none of the log naming rules"))
            continue
        model = _model_named(kind, m, by_key, figs, path.name)
        if model is None:
            continue
        try:
            _READERS[kind](figs, path.name, read_log(path), model, m)
        except LogParseError as exc:
            figs.skipped.append((path.name, str(exc)))
    return figs


def _put(table: dict, key, fig: Figure, figs: LogFigures) -> None:
    if key in table and not math.isclose(table[key].value, fig.value, rel_tol=1e-9):
        figs.skipped.append((fig.source, f"gives {fig.value:g} for {key}, but {table[key].source} already "
                                         f"gave {table[key].value:g}; keeping the first"))
        return
    table.setdefault(key, fig)
