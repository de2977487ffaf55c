"""A real, offline classification data set for CPU searches: scikit-learn's handwritten digits.

The command over :mod:`solvers.digits_data` (train / validation LMDBs and ``digits.json``)::

    python -m solvers.digits OUT_DIR [--size 32] [--val 497] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import sys

from dfseg.base.cli import run_cli

from .digits_data import prepare


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--val", type=int, default=497)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.digits"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


def _run(args: argparse.Namespace) -> int:
    print(json.dumps(prepare(args.out, args.size, args.val, args.seed), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
