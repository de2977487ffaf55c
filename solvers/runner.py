"""Train a net with its solver through pycaffe: snapshots, resume, curves, divergence stop.

The command over :mod:`solvers.training`::

    python -m solvers.runner train SOLVER --workdir DIR [--weights W.caffemodel] [--snapshot-every N]
    python -m solvers.runner imagenet WARMUP_SOLVER MAIN_SOLVER --workdir DIR

Exit status: 0 trained; 2 bad input (a solver, weights or data that cannot work: one line);
3 training diverged (one line naming the last good snapshot); 1 a bug.
"""
from __future__ import annotations

import argparse
import json
import sys

from dfseg.base.cli import one_line, run_cli

from .training import TrainingDiverged, train, train_phases

# Its own status, so a script tells "lower the learning rate" from a file that cannot be read.
EXIT_DIVERGED = 3


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one solver (resumes from the newest snapshot in --workdir)")
    t.add_argument("solver")
    im = sub.add_parser("imagenet", help="warm-up then main solver, weights carried over")
    im.add_argument("warmup_solver")
    im.add_argument("main_solver")
    for p in (t, im):
        p.add_argument("--workdir", required=True)
        p.add_argument("--weights", action="append", default=[], help="initial weights (e.g. the backbone's)")
        p.add_argument("--snapshot-every", type=int)
        p.add_argument("--test-every", type=int)
        p.add_argument("--divergence-factor", type=float, default=10.0)
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.runner"
    args = _parser(prog).parse_args(argv)
    # bad input (RecipeError, CaffeNotFound, and DataError, which reaches here from inside Caffe's
    # Python data layers as itself) is an InputError: one line, exit 2
    return run_cli(lambda: _run(args, prog), prog=prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    kw = dict(weights=args.weights, snapshot_every=args.snapshot_every, test_every=args.test_every,
              divergence_factor=args.divergence_factor)
    try:
        if args.cmd == "train":
            r = train(args.solver, args.workdir, **kw)
            print(json.dumps({"iterations": r.iterations, "final_weights": str(r.final_weights),
                              "resumed_from": r.resumed_from, "last_val": r.last_val}))
        else:
            rs = train_phases([("warmup", args.warmup_solver), ("main", args.main_solver)], args.workdir, **kw)
            print(json.dumps({"final_weights": str(rs[-1].final_weights), "last_val": rs[-1].last_val}))
    except TrainingDiverged as e:
        # run_cli's line, with the exit status of its own
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


if __name__ == "__main__":
    sys.exit(main())
