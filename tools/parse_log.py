"""Read the figures of a benchmark or evaluation log: a `caffe time` log, a TensorRT per-layer
profile or a `caffe test` log (the parsers: tools.report.log_parsers).

    python -m tools.parse_log {caffe-time,tensorrt-profile,caffe-test} LOG [--layers]

Prints the parsed figures as JSON (the per-layer table only with --layers).  A `caffe time`
log as a table: ``python -m tools.caffe_time parse LOG`` (the same parser).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.cli import run_cli
from tools.report.log_parsers import PARSERS, parse_log_file
from tools.report.time_table import to_json


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(PARSERS))
    ap.add_argument("log", type=Path)
    ap.add_argument("--layers", action="store_true", help="keep the per-layer table in the output")
    return ap


def _run(args: argparse.Namespace) -> None:
    result = parse_log_file(args.kind, args.log)
    if not args.layers:
        result.pop("layers", None)
    sys.stdout.write(to_json(result))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.parse_log"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
