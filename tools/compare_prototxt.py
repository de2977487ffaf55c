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

from prototxt_gen.compare import compare_nets
from prototxt_gen.netio import NetReadError, read_net

__all__ = ["compare_nets", "load_net", "main"]

# A prototxt file (or Caffe log) -> NetParameter; raises NetReadError ("file:line: message").
load_net = read_net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_prototxt",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="first prototxt (or Caffe log printing a net)")
    parser.add_argument("b", help="second prototxt (or Caffe log printing a net)")
    parser.add_argument("--max", type=int, default=20, metavar="N",
                        help="print at most N differences (default 20)")
    args = parser.parse_args(argv)
    try:
        net_a = read_net(args.a)
        net_b = read_net(args.b)
    except NetReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
