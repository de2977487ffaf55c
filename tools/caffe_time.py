"""`caffe time` harness: run the real benchmark binary on a net and turn its log into a table.

    python -m tools.caffe_time run NET [--iterations N] [--input 1x3xHxW] [--phase TRAIN|TEST]
                                       [--log FILE] [--json | --csv | --markdown]
    python -m tools.caffe_time parse LOG [--json | --csv | --markdown]

Both print (JSON form) ``{"forward_ms", "backward_ms", "fps", "iterations",
"layers": [{"name", "forward_ms", "backward_ms"}], ...}``.  FPS counts batch-1 forward
passes, as the paper does.  `run` defaults to 100 iterations in the TRAIN phase — what the
authors timed (their released log says "NetState phase (0)") — and warns on stderr when
other processes keep the CPU busy, since their load skews the figures.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from pathlib import Path

from prototxt_gen import caffe_pb2
from tools.caffe_locate import CaffeNotFound
from tools.engines.caffe import CaffeTimeError, run_caffe_time
from tools.engines.machine import busy_cpu_report
from tools.report.log_parsers import LogParseError, parse_caffe_time
from dfseg.base.cli import nchw_argument, one_line
from tools.export.netparam import DATA_LAYER_TYPES, NetDefinitionError, check_prototxt, read_net, write_net

DEFAULT_ITERATIONS = 100   # the paper's and the release log's setting

__all__ = ["run_net", "run_caffe_time", "with_timed_input", "busy_cpu_report", "CaffeTimeError",
           "parse_shape", "to_markdown", "to_csv", "main"]


# ---------------------------------------------------------------- net preparation

parse_shape = nchw_argument   # --input NxCxHxW


def with_timed_input(net: caffe_pb2.NetParameter, shape: tuple[int, ...]) -> caffe_pb2.NetParameter:
    """`net` as `caffe time` should see it at `shape`: its data layers (any phase) or legacy
    input fields become one Input layer for the image blob; layers that need the other
    data tops (labels: Accuracy, losses) are dropped, as in the authors' caffetime nets."""
    data_layers = [layer for layer in net.layer if layer.type in DATA_LAYER_TYPES]
    if net.input:
        image, other_tops = net.input[0], set(net.input[1:])
    elif data_layers:
        image = data_layers[0].top[0]
        other_tops = {t for layer in data_layers for t in layer.top} - {image}
    else:
        raise NetDefinitionError(f"net {net.name!r} has no data layer or input to resize")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.input[:], out.input_dim[:], out.input_shape[:], out.layer[:]
    entry = out.layer.add(name="input", type="Input", top=[image])
    entry.input_param.shape.add(dim=list(shape))
    unavailable = set(other_tops)
    for layer in net.layer:
        if layer.type in DATA_LAYER_TYPES:
            continue
        if unavailable & set(layer.bottom):
            unavailable.update(layer.top)
            continue
        out.layer.append(layer)
    return out


# ---------------------------------------------------------------- running

def run_net(net_path: Path, iterations: int = DEFAULT_ITERATIONS,
            input_shape: tuple[int, ...] | None = None, phase: str = "TRAIN",
            log_path: Path | None = None, warn_busy: bool = True, threads: int | None = None,
            progress: bool = True) -> dict:
    """`caffe time` on a prototxt through the engine layer (tools.engines.caffe); `input_shape`
    first replaces the net's data layer by an Input of that shape."""
    if warn_busy:
        report = busy_cpu_report()
        if report:
            print(f"caffe_time: warning: {report}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="caffe_time_") as tmp:
        model = Path(net_path)
        if input_shape is not None:
            model = Path(tmp) / "timed.prototxt"
            write_net(with_timed_input(read_net(net_path), input_shape), model)
        else:
            check_prototxt(model)   # Caffe would only say "Failed to parse NetParameter file"
        return run_caffe_time(model, iterations, phase, threads, log_path, progress, label=str(net_path))


# ---------------------------------------------------------------- tables

def _ms(value) -> str:
    return "" if value is None else f"{value:.4f}"


def to_markdown(result: dict) -> str:
    rows = ["| layer | forward ms | backward ms |", "|---|---:|---:|"]
    rows += [f"| {l['name']} | {_ms(l.get('forward_ms'))} | {_ms(l.get('backward_ms'))} |"
             for l in result["layers"]]
    summary = (f"Average forward: {result['forward_ms']:.4f} ms = {result['fps']:.1f} FPS"
               f"; average backward: {_ms(result.get('backward_ms')) or '-'} ms"
               f"; iterations: {result.get('iterations') or '-'}")
    return summary + "\n\n" + "\n".join(rows) + "\n"


def to_csv(result: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["layer", "forward_ms", "backward_ms"])
    for l in result["layers"]:
        writer.writerow([l["name"], l.get("forward_ms"), l.get("backward_ms")])
    writer.writerow(["(average forward pass)", result["forward_ms"], result.get("backward_ms")])
    return buf.getvalue()


def emit(result: dict, fmt: str) -> None:
    if fmt == "json":
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "csv":
        sys.stdout.write(to_csv(result))
    else:
        sys.stdout.write(to_markdown(result))


# ---------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.caffe_time", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run `caffe time` on a net")
    run.add_argument("net", type=Path, help="prototxt to time")
    run.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"timed iterations (default {DEFAULT_ITERATIONS}, as the paper)")
    run.add_argument("--input", type=parse_shape, default=None, metavar="NxCxHxW",
                     help="replace the net's data layer by an Input of this shape")
    run.add_argument("--phase", choices=["TRAIN", "TEST"], default="TRAIN",
                     help="net phase (default TRAIN: what `caffe time` and the authors used)")
    run.add_argument("--log", type=Path, default=None, help="also keep caffe's full log here")
    run.add_argument("--threads", type=int, default=None,
                     help="pin OpenBLAS to this many threads (default: the environment's setting)")
    parse = sub.add_parser("parse", help="turn an existing `caffe time` log into a table")
    parse.add_argument("log", type=Path)
    for s in (run, parse):
        fmt = s.add_mutually_exclusive_group()
        fmt.add_argument("--json", dest="fmt", action="store_const", const="json")
        fmt.add_argument("--csv", dest="fmt", action="store_const", const="csv")
        fmt.add_argument("--markdown", dest="fmt", action="store_const", const="markdown")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            if args.iterations < 1:
                raise CaffeTimeError(f"--iterations {args.iterations}: must be at least 1")
            result = run_net(args.net, args.iterations, args.input, args.phase, args.log,
                             threads=args.threads)
        else:
            try:
                text = args.log.read_text(errors="replace")
            except OSError as e:
                raise CaffeTimeError(f"{args.log}: cannot read ({e.strerror})") from e
            result = parse_caffe_time(text, str(args.log))
    except (CaffeNotFound, CaffeTimeError, NetDefinitionError, LogParseError) as e:
        print(f"caffe_time: error: {one_line(e)}", file=sys.stderr)
        return 2
    emit(result, args.fmt or "markdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
