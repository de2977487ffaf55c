"""Classification accuracy: top-1 / top-5 with a single centre crop.

The command over :mod:`solvers.topk_accuracy`::

    python -m solvers.evaluate NET WEIGHTS DATA [--resize-short 256] [--mean 104,117,123]
        [--scale 0.008] [--batch 50] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys

from dfseg.base.cli import run_cli
from dfseg.base.sizes import parse_hxw

from .topk_accuracy import evaluate_deploy


def _mean(text: str) -> tuple[float, ...]:
    """``104,117,123`` -> per-channel floats; ``''`` -> no mean."""
    try:
        return tuple(float(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 104,117,123") from None


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("net", help="deploy prototxt (Input layer)")
    ap.add_argument("weights", help="caffemodel")
    ap.add_argument("data", help="LMDB of Datums or 'path label' list file")
    ap.add_argument("--root", help="folder of the list file's paths")
    ap.add_argument("--crop", help="HxW centre crop (default: the net's input size)")
    ap.add_argument("--resize-short", type=int, help="shorter side before the crop (e.g. 256)")
    ap.add_argument("--resize", help="fixed HxW before the crop")
    ap.add_argument("--mean", type=_mean, default="104,117,123", help="per-channel BGR mean ('' for none)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json", action="store_true")
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.evaluate"
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args), prog=prog)


def _run(args: argparse.Namespace) -> int:
    result = evaluate_deploy(args.net, args.weights, args.data, root=args.root,
                             crop=parse_hxw(args.crop) if args.crop else None,
                             resize=parse_hxw(args.resize) if args.resize else None,
                             resize_short=args.resize_short, mean=args.mean, scale=args.scale, batch=args.batch,
                             limit=args.limit)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"top-1 {100 * result.top1:.2f} %   top-5 {100 * result.top5:.2f} %   ({result.count} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
