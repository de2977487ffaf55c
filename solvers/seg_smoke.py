"""Segmentation smoke run: DF-Seg trained through pycaffe on a data set laid out exactly like
Cityscapes, evaluated with the Cityscapes evaluator.

The command over :mod:`solvers.segmentation_smoke`::

    python -m solvers.seg_smoke OUT [--iterations 150] [--encoding ENC]

Writes ``OUT/summary.json`` (first/last training loss, mIoU) and ``OUT/pred_val.txt``; exits 1
when the training loss did not fall.
"""
from __future__ import annotations

import argparse
import sys

from dfseg.base.cli import run_cli

from .segmentation_smoke import DEFAULT_ENCODING, run


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--encoding", default=DEFAULT_ENCODING)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--base-lr", type=float, default=0.01)
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.seg_smoke"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


def _run(args: argparse.Namespace) -> int:
    s = run(args.out, args.iterations, args.encoding, args.batch_size, args.base_lr)
    print(f"loss {s['loss_first']:.3f} -> {s['loss_last']:.3f} over {s['iterations']} iterations; "
          f"mIoU {s['miou']:.3f} (category {s['miou_category']:.3f}); report {s['report']}")
    # `make seg-smoke` fails when the run did not learn
    return 0 if s["loss_last"] < s["loss_first"] else 1


if __name__ == "__main__":
    sys.exit(main())
