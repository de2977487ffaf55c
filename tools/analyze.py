"""Shapes, parameters, MACs and Caffe's data memory of a Caffe net.

    python -m tools.analyze NET.prototxt --input 1x3x1024x2048 [--phase TRAIN|TEST] [--json]

NET may also be a Caffe log: the net printed after "Initializing net from parameters:"
is analysed, by default in the phase the log names (``caffe time`` builds TRAIN).
Bad input prints one line ``file:line: message`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.cli import CliError, one_line, run_cli, shape_argument
from prototxt_gen.analysis import AnalysisError, analyze, stated_phase
from prototxt_gen.analysis_plot import plot_analysis
from prototxt_gen.encoding import EncodingError
from prototxt_gen.netio import read_net
from prototxt_gen.reverse import encoding_of

PROG = "python -m tools.analyze"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("net", help="prototxt file, or a Caffe log that printed the net")
    parser.add_argument("--input", metavar="NxCxHxW", type=shape_argument,
                        help="input size replacing the net's first data top, e.g. 1x3x1024x2048")
    parser.add_argument("--shape", metavar="TOP=NxCxHxW", type=_named_shape, action="append",
                        default=[], help="shape of another data-layer top, e.g. label=8x1x1024x1024 "
                        "(repeatable; needed for Python data layers)")
    parser.add_argument("--phase", choices=("TRAIN", "TEST"),
                        help="net state used to filter layers (default: the phase the net's own "
                        "state names, as a Caffe log prints it, else TEST; `caffe time` uses TRAIN)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--log-net", type=int, default=0, metavar="I",
                        help="for a log printing several nets (training: train net, then test net), "
                        "analyse the I-th (default 0)")
    parser.add_argument("--plot", metavar="PNG", help="also draw per-layer MACs and the running data memory")
    parser.add_argument("--allow-unknown-fields", action="store_true",
                        help="skip prototxt fields our Caffe schema lacks (e.g. PSPNet's bn_param)")
    return parser


def _named_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form TOP=NxCxHxW")
    return name, shape_argument(dims)


def _plot(result, path: str, label: str) -> None:
    try:
        plot_analysis(result, path, label=label)
    except OSError as exc:  # --plot names a folder, a missing folder, or the disk is full
        raise CliError(f"--plot {one_line(exc)}") from None
    except ValueError as exc:  # a suffix matplotlib cannot write (e.g. .xyz)
        raise CliError(f"--plot {path}: {one_line(exc)}") from None


def _run(args) -> int:
    net = read_net(args.net, allow_unknown_fields=args.allow_unknown_fields, log_index=args.log_net)
    phase = args.phase or stated_phase(net)
    try:
        result = analyze(net, input_shape=args.input, phase=phase, top_shapes=dict(args.shape))
    except AnalysisError as exc:
        raise CliError(f"{args.net}: {one_line(exc)}") from None
    if args.plot:
        _plot(result, args.plot, net.name or Path(args.net).name)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(result.table())
        try:  # release-format nets also show the architecture they encode
            print(f"encoding: {encoding_of(net)}")
        except EncodingError:
            pass
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    args = build_parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
