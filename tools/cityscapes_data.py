"""Cityscapes on disk -> training lists or LMDB pairs, with the official labelId -> trainId map.

CLI::

    python -m tools.cityscapes_data list ROOT --split train --out DIR
        # DIR/train.txt ("image trainIdLabel" lines) + DIR/gtFine_trainIds/... label images
    python -m tools.cityscapes_data lmdb ROOT --split train --out DIR [--resize HxW]
        # DIR/train_image_lmdb + DIR/train_label_lmdb, same keys
    python -m tools.cityscapes_data synth ROOT [--size 64x128] [--per-city 4]
        # a small generated data set laid out exactly like Cityscapes (for smoke runs)

The layout, the checks and the generator: tools.data.cityscapes_dataset.
"""
from __future__ import annotations

import argparse
import sys

from dfseg.base.cli import run_cli
from dfseg.base.sizes import parse_hxw
from tools.data.cityscapes_dataset import build_lmdb_pairs, make_synthetic, write_lists


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    li = sub.add_parser("list", help="image/trainId-label list and trainId label images")
    li.add_argument("root")
    li.add_argument("--split", default="train")
    li.add_argument("--out", required=True)
    lm = sub.add_parser("lmdb", help="image and label LMDBs with the same keys")
    lm.add_argument("root")
    lm.add_argument("--split", default="train")
    lm.add_argument("--out", required=True)
    lm.add_argument("--resize", help="HxW (labels resized with nearest neighbour)")
    sy = sub.add_parser("synth", help="generate a small data set in the Cityscapes layout")
    sy.add_argument("root")
    sy.add_argument("--size", default="64x128", help="HxW of the frames")
    sy.add_argument("--per-city", type=int, default=4)
    sy.add_argument("--seed", type=int, default=0)
    return ap


def _run(args: argparse.Namespace) -> None:
    if args.cmd == "list":
        print(write_lists(args.root, args.split, args.out))
    elif args.cmd == "lmdb":
        img, lbl, n = build_lmdb_pairs(args.root, args.split, args.out,
                                       parse_hxw(args.resize) if args.resize else None)
        print(f"{img}, {lbl}: {n} pairs")
    else:
        counts = make_synthetic(args.root, size=parse_hxw(args.size), per_city=args.per_city, seed=args.seed)
        print(f"{args.root}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.cityscapes_data"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
