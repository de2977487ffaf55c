"""Parsers for the benchmark and evaluation logs the paper's figures come from.

Three log kinds live here (the fourth, the Cityscapes evaluation output, is parsed in
`tools.report.cityscapes_log`):

* ``caffe time``  -> :func:`parse_caffe_time`
* TensorRT per-layer profile ("Time over all layers") -> :func:`parse_tensorrt_profile`
* ``caffe test``  -> :func:`parse_caffe_test`

Every parser takes the log *text* (plus an optional ``source`` used in error messages),
ignores lines it does not recognise (glog noise, progress output, a net dump, another
tool's output interleaved), uses the *last complete* run when several runs were appended to
one file, and raises :class:`LogParseError` naming the source and the missing figure when
the figure asked for is not there (e.g. a truncated log).
"""
from __future__ import annotations

import re
from pathlib import Path

from dfseg.base.errors import InputError

__all__ = [
    "LogParseError",
    "read_log",
    "parse_caffe_time",
    "parse_tensorrt_profile",
    "parse_caffe_test",
    "caffe_failure_reason",
    "PARSERS",
    "parse_log_file",
]

# A decimal as C++ streams print it: 32.5541, 7, 1.2e-05, nan.
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
# Optional glog prefix: "I0308 15:13:33.170680 30521 caffe.cpp:408] " (the authors' glog), or
# with the year, "I20261121 05:13:33.170680 ..." (newer glog, e.g. Debian 12's).
_GLOG = r"(?:[IWEF](?:\d{8}|\d{4})\s+[\d:.]+\s+\d+\s+[\w.\-]+:\d+\]\s?)?"


class LogParseError(InputError, ValueError):
    """A log lacks the figure asked for, or is not the kind of log expected."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}")


def read_log(path: str | Path) -> str:
    """Read a log as text; undecodable bytes (binary garbage, a cut multibyte character at
    the end of a truncated file) become U+FFFD instead of failing the whole parse."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise LogParseError(str(path), f"cannot read log ({exc.strerror or exc})") from None


def _lines(text: str) -> list[str]:
    # Progress output uses bare carriage returns; treat them as line breaks.
    return re.split(r"\r\n|\r|\n", text)


# --------------------------------------------------------------------------- caffe time

_TIME_BEGIN = re.compile(r"\*\*\* Benchmark begins \*\*\*")
_TIME_ITERATIONS = re.compile(r"Testing for (\d+) iterations")
_TIME_ITERATION_LINE = re.compile(r"Iteration: (\d+) forward(?:-backward)? time: (" + _NUM + r") ms")
_TIME_LAYER = re.compile(
    r"^" + _GLOG + r"\s*(?P<name>\S+)\s+(?P<pass>forward|backward):\s*(?P<ms>" + _NUM + r")\s*ms\.?\s*$")
_TIME_AVERAGE = {
    "forward_ms": re.compile(r"Average Forward pass:\s*(" + _NUM + r")\s*ms"),
    "backward_ms": re.compile(r"Average Backward pass:\s*(" + _NUM + r")\s*ms"),
    "forward_backward_ms": re.compile(r"Average Forward-Backward:\s*(" + _NUM + r")\s*ms"),
    "total_ms": re.compile(r"Total Time:\s*(" + _NUM + r")\s*ms"),
}
_TOP_SHAPE = re.compile(r"Top shape:\s*((?:\d+\s*)+)\(")
_DEVICE = re.compile(r"GPU device name:\s*(?P<gpu>.+?)\s*$|Use GPU with device ID (?P<gpu_id>\d+)|(?P<cpu>Use CPU)")


_PARSE_ERROR = re.compile(r"Error parsing text-format [\w.]+: (?P<where>\d+:\d+): (?P<why>.*)$")


def caffe_failure_reason(lines: list[str]) -> str:
    """Why a Caffe run failed, in one line: its last fatal/error line, with the line:column and
    field of a text-format parse error when protobuf logged one (Caffe's fatal line only says
    "Failed to parse NetParameter file")."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    fatal = [ln for ln in lines if re.match(r"[FE]\d{4}", ln) or "Check failed" in ln]
    why = fatal[-1] if fatal else (lines[-1] if lines else "no output")
    parse_errors = [m for m in map(_PARSE_ERROR.search, lines) if m]
    if parse_errors:
        m = parse_errors[-1]
        why = f"{why} (line {m.group('where')}: {m.group('why')})"
    return why


def _benchmark_sections(text: str) -> list[str]:
    """Split a log into benchmark runs; the text before the first marker belongs to the first
    run (it holds the net set-up).  A file without any marker is one run (an excerpt)."""
    starts = [m.start() for m in _TIME_BEGIN.finditer(text)]
    if not starts:
        return [text]
    bounds = starts[1:] + [len(text)]
    sections = [text[s:e] for s, e in zip(starts, bounds)]
    sections[0] = text[:starts[0]] + sections[0]
    return sections


def _last_complete_benchmark(text: str, source: str) -> str:
    """The last benchmark section with an "Average Forward pass" figure (several runs may
    have been appended to one log)."""
    sections = _benchmark_sections(text)
    complete = [s for s in sections if _TIME_AVERAGE["forward_ms"].search(s)]
    if not complete:
        seen = len(_TIME_ITERATION_LINE.findall(text))
        hint = (f"benchmark started but stopped after {seen} iteration(s) (truncated log?)"
                if _TIME_BEGIN.search(text) else "this does not look like `caffe time` output")
        raise LogParseError(source, f"no 'Average Forward pass' figure: {hint}")
    return complete[-1]


def _time_averages(section: str, source: str) -> dict[str, float | None]:
    """The section's "Average ..." figures (the last of each); forward must be a positive time."""
    averages: dict[str, float | None] = {}
    for key, pattern in _TIME_AVERAGE.items():
        found = pattern.findall(section)
        averages[key] = float(found[-1]) if found else None
    forward_ms = averages["forward_ms"]
    if forward_ms is None or not 0 < forward_ms < float("inf"):
        raise LogParseError(source, f"'Average Forward pass' is {forward_ms!r} ms, not a positive time")
    return averages


def _time_iterations(section: str, averages: dict[str, float | None]) -> int | None:
    m = _TIME_ITERATIONS.search(section)
    if m:
        return int(m.group(1))
    if averages["total_ms"] and averages["forward_backward_ms"]:
        return round(averages["total_ms"] / averages["forward_backward_ms"])
    done = [int(n) for n, _ in _TIME_ITERATION_LINE.findall(section)]
    return max(done) if done else None


def _time_layers(section: str) -> list[dict]:
    """Per-layer averages, which follow "Average time per layer:"; in the printed order."""
    layers: dict[str, dict] = {}
    table_start = section.find("Average time per layer")
    for line in _lines(section[table_start:] if table_start >= 0 else section):
        m = _TIME_LAYER.match(line)
        if not m:
            continue
        entry = layers.setdefault(m["name"], {"name": m["name"], "forward_ms": None, "backward_ms": None})
        entry[f"{m['pass']}_ms"] = float(m["ms"])
    return list(layers.values())


def _time_device(text: str) -> str | None:
    device = None
    for line in _lines(text):
        d = _DEVICE.search(line)
        if d:  # a device name, when printed, is more telling than the id printed before it
            device = d["gpu"] or (f"GPU {d['gpu_id']}" if d["gpu_id"] else "CPU")
    return device


def parse_caffe_time(text: str, source: str = "<caffe time log>") -> dict:
    """Parse the output of ``caffe time``.

    Returns ``{"forward_ms", "backward_ms", "fps", "iterations", "layers": [{"name",
    "forward_ms", "backward_ms"}], "forward_backward_ms", "total_ms", "input_shape",
    "device"}``.  ``fps`` = 1000 / forward_ms (batch 1, forward only, as the paper counts
    it).  ``backward_ms`` is None for forward-only benchmarks; ``iterations`` comes from
    "Testing for N iterations", else Total Time / Forward-Backward, else the per-iteration
    lines, else None.  Raises LogParseError when no "Average Forward pass" figure exists.
    """
    section = _last_complete_benchmark(text, source)
    averages = _time_averages(section, source)
    shape = _TOP_SHAPE.search(text)
    return {
        "forward_ms": averages["forward_ms"],
        "backward_ms": averages["backward_ms"],
        "fps": 1000.0 / averages["forward_ms"],
        "iterations": _time_iterations(section, averages),
        "layers": _time_layers(section),
        "forward_backward_ms": averages["forward_backward_ms"],
        "total_ms": averages["total_ms"],
        "input_shape": [int(v) for v in shape.group(1).split()] if shape else None,
        "device": _time_device(text),
    }


# ------------------------------------------------------------------- TensorRT profile

_TRT_TOTAL = re.compile(r"Time over all layers:\s*(" + _NUM + r")\s*ms")
# TensorRT 3 samples print the layer name padded (and cut) to 40 columns, then "<ms>ms".
_TRT_LAYER = re.compile(r"^(?P<name>\S.*?)\s+(?P<ms>" + _NUM + r")\s*ms\s*$")
_TRT_NET = re.compile(r"inference engine for\s+(\S+)")
_TRT_BINDING = re.compile(r"Binding\s+\d+\s+\((?P<name>[^)]*)\):\s*(?P<kind>Input|Output)")


def parse_tensorrt_profile(text: str, source: str = "<TensorRT profile>") -> dict:
    """Parse a TensorRT per-layer profile in the release's format (one "<layer> <t>ms" line
    per fused layer, closed by "Time over all layers: <t>ms").

    Returns ``{"total_ms", "fps", "layers": [{"name", "ms"}], "layer_sum_ms", "net",
    "inputs", "outputs"}``; fps = 1000 / total_ms.  When several profiles were appended,
    the last complete one is used.  Raises LogParseError without a "Time over all layers".
    """
    lines = _lines(text)
    total_idx = [i for i, line in enumerate(lines) if _TRT_TOTAL.search(line)]
    if not total_idx:
        n = sum(1 for line in lines if _TRT_LAYER.match(line.strip()))
        hint = (f"{n} per-layer line(s) but no total (truncated log?)" if n
                else "this does not look like a TensorRT profile")
        raise LogParseError(source, f"no 'Time over all layers' figure: {hint}")
    end = total_idx[-1]
    start = total_idx[-2] + 1 if len(total_idx) > 1 else 0
    total_ms = float(_TRT_TOTAL.search(lines[end]).group(1))
    if not 0 < total_ms < float("inf"):
        raise LogParseError(source, f"'Time over all layers' is {total_ms} ms, not a positive time")

    layers = []
    for line in lines[start:end]:
        m = _TRT_LAYER.match(line.strip())
        if m and not _TRT_TOTAL.search(line):
            layers.append({"name": m["name"].strip(), "ms": float(m["ms"])})
    block = "\n".join(lines[start:end])
    net = _TRT_NET.search(block) or _TRT_NET.search(text)
    bindings = _TRT_BINDING.findall(block) or _TRT_BINDING.findall(text)
    return {
        "total_ms": total_ms,
        "fps": 1000.0 / total_ms,
        "layers": layers,
        "layer_sum_ms": sum(layer["ms"] for layer in layers),
        "net": net.group(1) if net else None,
        "inputs": [name for name, kind in bindings if kind == "Input"],
        "outputs": [name for name, kind in bindings if kind == "Output"],
    }


# ------------------------------------------------------------------------- caffe test

_TEST_BATCH = re.compile(r"Batch (\d+), (\S+) = (" + _NUM + r")")
# The final summary lines carry no "Batch" prefix: "caffe.cpp:321] accuracy/top-1 = 0.697761".
_TEST_FINAL = re.compile(r"^" + _GLOG + r"\s*(?P<name>[^\s=]+) = (?P<value>" + _NUM + r")"
                         r"(?:\s*\(\*\s*(?P<weight>" + _NUM + r")\s*=\s*(?P<weighted>" + _NUM + r") loss\))?\s*$")
_TEST_LOSS = re.compile(r"\]\s*Loss:\s*(" + _NUM + r")")
_TOP_K = re.compile(r"top[-_]?(\d+)", re.IGNORECASE)


def parse_caffe_test(text: str, source: str = "<caffe test log>") -> dict:
    """Parse the output of ``caffe test``: the final averaged outputs printed after the last
    batch (e.g. ``accuracy/top-1 = 0.697761``).

    Returns ``{"top1", "top5", "outputs": {name: value}, "batches", "loss"}``; top1 / top5
    are fractions as the log prints them (None when the net has no such output).  An output
    counts as top-k when its name contains "top-k"/"top_k"; a lone "accuracy" is top-1.
    Raises LogParseError when the final summary is missing (truncated log) or has no
    accuracy output.
    """
    lines = _lines(text)
    batches = [int(m.group(1)) for line in lines for m in [_TEST_BATCH.search(line)] if m]
    loss_idx = [i for i, line in enumerate(lines) if _TEST_LOSS.search(line)]
    if not loss_idx:
        hint = (f"{len(set(batches))} batch(es) logged but no final summary (truncated log?)"
                if batches else "this does not look like `caffe test` output")
        raise LogParseError(source, f"no final 'Loss:' / accuracy summary: {hint}")
    start = loss_idx[-1]
    # batches of the run that summary closes: after the previous run's summary, if any
    run_begin = loss_idx[-2] + 1 if len(loss_idx) > 1 else 0
    batches = [int(m.group(1)) for line in lines[run_begin:start] for m in [_TEST_BATCH.search(line)] if m]
    outputs: dict[str, float] = {}
    for line in lines[start + 1:]:
        m = _TEST_FINAL.match(line)
        if m:
            outputs[m["name"]] = float(m["value"])
        elif outputs and not line.strip():
            continue
        elif outputs and "Batch" in line:
            break  # another run begins
    accuracy = {}
    for name, value in outputs.items():
        if "acc" not in name.lower():
            continue
        k = _TOP_K.search(name)
        accuracy.setdefault(int(k.group(1)) if k else 1, value)
    if not accuracy:
        raise LogParseError(source, "final summary has no accuracy output (found: "
                            + (", ".join(outputs) or "nothing") + ")")
    return {
        "top1": accuracy.get(1),
        "top5": accuracy.get(5),
        "outputs": outputs,
        "batches": max(batches) + 1 if batches else None,
        "loss": float(_TEST_LOSS.search(lines[start]).group(1)),
    }


# ---------------------------------------------------------------------- by kind

# The kinds `python -m tools.parse_log` reads (and `python -m tools.caffe_time parse`, which is
# its "caffe-time" kind with a table as output).
PARSERS = {"caffe-time": parse_caffe_time, "tensorrt-profile": parse_tensorrt_profile,
           "caffe-test": parse_caffe_test}


def parse_log_file(kind: str, path: str | Path) -> dict:
    """The figures of the log file `path`, read by the parser of `kind` (a PARSERS key)."""
    return PARSERS[kind](read_log(path), str(path))
