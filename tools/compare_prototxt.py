"""Compare two Caffe prototxts as parsed messages, layer for layer, field for field.

    python -m tools.compare_prototxt A.prototxt B.prototxt [--max N]

Fields restating their default value and the data layers' list path are ignored (see
prototxt_gen.compare).  Exit status: 0 equal, 1 different (the first differences are
printed as "<layer and field path>: A=<value> B=<value>"), 2 unreadable or malformed
input (one line "file:line: message").
"""
from __future__ import annotations

import argparse
import sys

from dfseg.base.cli import run_cli
from prototxt_gen.compare import compare_nets
from prototxt_gen.netio import read_net

PROG = "python -m tools.compare_prototxt"


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="first prototxt (or Caffe log printing a net)")
    parser.add_argument("b", help="second prototxt (or Caffe log printing a net)")
    parser.add_argument("--max", type=int, default=20, metavar="N",
                        help="print at most N differences (default 20)")
    return parser


def _run(args) -> int:
    net_a, net_b = read_net(args.a), read_net(args.b)
    differences = compare_nets(net_a, net_b)
    if not differences:
        print(f"equal: {args.a} and {args.b} ({len(net_a.layer)} layers)")
        return 0
    print(f"different: {args.a} (A) and {args.b} (B) differ in {len(differences)} place(s)")
    for line in differences[: max(args.max, 1)]:
        print(f"  {line}")
    if len(differences) > args.max:
        print(f"  ... and {len(differences) - args.max} more")
    return 1


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
