"""`caffe time` harness: run the real benchmark binary on a net and turn its log into a table.

    python -m tools.caffe_time run NET [--iterations N] [--input 1x3xHxW] [--phase TRAIN|TEST]
                                       [--log FILE] [--json | --csv | --markdown]
    python -m tools.caffe_time parse LOG [--json | --csv | --markdown]

Both print (JSON form; tools.report.time_table) ``{"forward_ms", "backward_ms", "fps",
"iterations", "layers": [{"name", "forward_ms", "backward_ms"}], ...}``; `parse` reads the log
with the parser of ``python -m tools.parse_log caffe-time``.  FPS counts batch-1 forward
passes, as the paper does.  `run` defaults to 100 iterations in the TRAIN phase — what the
authors timed (their released log says "NetState phase (0)") — and warns on stderr when
other processes keep the CPU busy, since their load skews the figures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dfseg.base.cli import nchw_argument, run_cli
from prototxt_gen.netio import check_prototxt, read_net, write_net
from prototxt_gen.netprep import with_image_input
from tools.engines.caffe import CaffeTimeError, run_caffe_time
from tools.engines.machine import busy_cpu_report
from tools.report.log_parsers import parse_log_file
from tools.report.time_table import FORMATS, render

DEFAULT_ITERATIONS = 100   # the paper's and the release log's setting

__all__ = ["main", "run_net"]


# ---------------------------------------------------------------- net preparation

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
            write_net(with_image_input(read_net(net_path), input_shape), model)
        else:
            check_prototxt(model)   # Caffe would only say "Failed to parse NetParameter file"
        return run_caffe_time(model, iterations, phase, threads, log_path, progress, label=str(net_path))


# ---------------------------------------------------------------- CLI

def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run `caffe time` on a net")
    run.add_argument("net", type=Path, help="prototxt to time")
    run.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"timed iterations (default {DEFAULT_ITERATIONS}, as the paper)")
    run.add_argument("--input", type=nchw_argument, default=None, metavar="NxCxHxW",
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
        for name in FORMATS:
            fmt.add_argument(f"--{name}", dest="fmt", action="store_const", const=name)
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "run":
        if args.iterations < 1:
            raise CaffeTimeError(f"--iterations {args.iterations}: must be at least 1")
        result = run_net(args.net, args.iterations, args.input, args.phase, args.log, threads=args.threads)
    else:
        result = parse_log_file("caffe-time", args.log)   # the parser of `python -m tools.parse_log`
    sys.stdout.write(render(result, args.fmt or "markdown"))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.caffe_time"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
