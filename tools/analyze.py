"""Shapes, parameters, MACs and Caffe's data memory of a Caffe net.

    python -m tools.analyze NET.prototxt --input 1x3x1024x2048 [--phase TRAIN|TEST] [--json]

NET may also be a Caffe log: the net printed after "Initializing net from parameters:"
is analysed, by default in the phase the log names (``caffe time`` builds TRAIN).
Bad input prints one line ``file:line: message`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from prototxt_gen.analysis_plot import plot_analysis
from prototxt_gen import caffe_pb2
from prototxt_gen.analysis import AnalysisError, analyze, parse_input_shape
from prototxt_gen.encoding import EncodingError
from prototxt_gen.netio import NetReadError, read_net
from prototxt_gen.reverse import encoding_of
from dfseg.base.cli import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.analyze", description=__doc__.split("\n\n")[0])
    parser.add_argument("net", help="prototxt file, or a Caffe log that printed the net")
    parser.add_argument("--input", metavar="NxCxHxW", type=_input_shape,
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


def _input_shape(text: str):
    try:
        return parse_input_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _stated_phase(net) -> str:
    """The phase a net's ``state`` names (a Caffe log prints the state it built), or TEST."""
    if net.HasField("state") and net.state.HasField("phase"):
        return caffe_pb2.Phase.Name(net.state.phase)
    return "TEST"


def _named_shape(text: str):
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form TOP=NxCxHxW")
    return name, _input_shape(dims)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        net = read_net(args.net, allow_unknown_fields=args.allow_unknown_fields, log_index=args.log_net)
        phase = args.phase or _stated_phase(net)
        result = analyze(net, input_shape=args.input, phase=phase, top_shapes=dict(args.shape))
    except NetReadError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except AnalysisError as exc:
        print(f"error: {args.net}: {one_line(exc)}", file=sys.stderr)
        return 2
    if args.plot:
        try:
            plot_analysis(result, args.plot, label=net.name or Path(args.net).name)
        except OSError as exc:  # --plot names a folder, a missing folder, or the disk is full
            print(f"error: --plot {one_line(exc)}", file=sys.stderr)
            return 2
        except ValueError as exc:  # a suffix matplotlib cannot write (e.g. .xyz)
            print(f"error: --plot {args.plot}: {one_line(exc)}", file=sys.stderr)
            return 2
    try:
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
    except BrokenPipeError:  # e.g. piped into `head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
