"""One GPU check of ``make gpu-check`` in a process of its own (tools.gpu_check starts it):
``python -m tools.gpu_runs NAME --result PATH [--gpu N --iterations N --rounds N --hw HxW]``
writes ``{"status": "pass"|"fail"|"skip", "detail": one line, ...figures}`` to PATH.  The checks
are tools.gpu.checks.  Needs an NVIDIA GPU; the Caffe checks need ``$CAFFE_ROOT`` at the CUDA
build (tools.gpu_check sets it).

``--gpu -1`` runs the same code with the CPU in the GPU's place (the "GPU" side then equals
the CPU side): how the tests exercise these checks on machines without a GPU."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import run_cli
from dfseg.base.sizes import parse_hxw
from tools.gpu.checks import CHILDREN, CheckOptions, run_check


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=sorted(CHILDREN))
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hw", type=parse_hxw, default=(1024, 2048))
    return parser


def _run(args) -> int:
    result = run_check(args.check, CheckOptions(args.gpu, args.iterations, args.rounds, args.hw))
    atomic_write_text(args.result, json.dumps(result, indent=2, default=float) + "\n")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.gpu_runs"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
