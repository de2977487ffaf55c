"""Fold BatchNorm + Scale into the preceding Convolution / InnerProduct: a caffemodel and its
prototxt become the merged-BN pair the authors released (``df1seg_mergebn.prototxt``).

    python -m tools.merge_bn NET WEIGHTS --out-net NET2 --out-weights WEIGHTS2

A BatchNorm that cannot be folded (after a Concat, a Pooling, a ShuffleChannel ...) stays in
the merged net with its Scale and weights, with a warning naming it.  A caffemodel that does
not fit its prototxt is refused with every mismatching layer and blob shape listed.  The
folding itself is tools.export.merge_bn's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.cli import run_cli
from tools.export.merge_bn import merge_files

PROG = "python -m tools.merge_bn"


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("net", type=Path, help="prototxt with BatchNorm/Scale layers")
    p.add_argument("weights", type=Path, help="its caffemodel")
    p.add_argument("--out-net", type=Path, required=True, help="merged prototxt to write")
    p.add_argument("--out-weights", type=Path, required=True, help="merged caffemodel to write")
    return p


def _run(args) -> int:
    kept: list[str] = []

    def warn(line: str) -> None:
        kept.append(line)
        print(f"merge_bn: warning: {line}", file=sys.stderr)

    folds = merge_files(args.net, args.weights, args.out_net, args.out_weights, warn=warn)
    print(f"merge_bn: folded {len(folds)} BatchNorm layers "
          f"({sum(f.scale is not None for f in folds)} with Scale)"
          + (f", kept {len(kept)} that cannot be folded" if kept else "")
          + f" -> {args.out_net}, {args.out_weights}",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
