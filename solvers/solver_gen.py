"""Solver prototxts as ``SolverParameter`` messages, built from YAML recipes.

The command over :mod:`solvers.solver_recipes` (recipes in ``solvers/recipes/``)::

    python -m solvers.solver_gen imagenet --train-net NET --dataset-size 1281167 \
        --batch-size 64 --devices 8 --out DIR
    python -m solvers.solver_gen cityscapes --train-net NET --out FILE [--set max_iter=1000]
"""
from __future__ import annotations

import argparse
import sys

from dfseg.base.cli import run_cli

from .solver_recipes import apply_overrides, cityscapes_solver, imagenet_solvers, load_recipe, write_solver


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    im = sub.add_parser("imagenet", help="the paper's warm-up + main ImageNet solvers")
    im.add_argument("--train-net", required=True)
    im.add_argument("--test-net", help="separate validation net (default: the TEST phase of --train-net)")
    im.add_argument("--dataset-size", type=int, default=1281167, help="training images (ImageNet-1k: 1281167)")
    im.add_argument("--val-size", type=int, default=50000, help="validation images (0: no validation)")
    im.add_argument("--batch-size", type=int, required=True, help="images per forward pass on one device")
    im.add_argument("--devices", type=int, default=1)
    im.add_argument("--snapshot-prefix", default="snapshots/imagenet")
    im.add_argument("--recipe", default="imagenet")
    im.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    im.add_argument("--out", required=True, help="directory for solver_warmup/solver_main.prototxt")
    cs = sub.add_parser("cityscapes", help="the DF-Seg Cityscapes solver")
    cs.add_argument("--train-net", required=True)
    cs.add_argument("--recipe", default="cityscapes")
    cs.add_argument("--snapshot-prefix", default="snapshots/cityscapes")
    cs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    cs.add_argument("--out", required=True, help="solver prototxt to write")
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.solver_gen"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


def _run(args: argparse.Namespace) -> int:
    recipe = apply_overrides(load_recipe(args.recipe), args.set)
    if args.cmd == "imagenet":
        plan = imagenet_solvers(args.train_net, dataset_size=args.dataset_size, batch_size=args.batch_size,
                                devices=args.devices, recipe=recipe, test_net=args.test_net,
                                val_size=args.val_size, snapshot_prefix=args.snapshot_prefix)
        w, m = plan.write(args.out)
        print(f"{w}: {plan.warmup.max_iter} iterations at lr {plan.warmup.base_lr}")
        print(f"{m}: {plan.main.max_iter} iterations, poly from {plan.main.base_lr}")
        print(f"batch {plan.batch.batch_size} x iter_size {plan.batch.iter_size} x devices "
              f"{plan.batch.devices} = {plan.batch.total}; {plan.iterations_per_epoch} iterations/epoch")
    else:
        sp = cityscapes_solver(args.train_net, recipe=recipe, snapshot_prefix=args.snapshot_prefix)
        print(write_solver(sp, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
