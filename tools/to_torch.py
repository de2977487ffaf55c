"""Caffe prototxt + caffemodel -> a plain PyTorch module (NAME.py) and its weights (NAME.pt).

    python -m tools.to_torch NET [WEIGHTS] --out NAME.py [--input 1x3x1024x2048] [--check]

NAME.py holds `class Net(torch.nn.Module)`, one attribute per Caffe layer with parameters
(named after the layer), a `forward` that runs the layers in Caffe's order with every blob a
local variable of its name, and `load()`; it imports nothing but torch (>= 2.4) and the
standard library.  NAME.pt is the Net's state_dict (`torch.load(..., weights_only=True)`
reads it): WEIGHTS converted (BatchNorm's moving averages divided by their scale factor,
Scale, the forks' BN, merged-BN nets as they are), else random weights (`--seed`).

--check also runs the net in pycaffe on the same weights and input (random unless given) and
compares every blob each layer writes with the module's value for it, read from the running
forward(); it exits 1 when any differs by more than --tolerance (1e-4) relative to the blob's
largest magnitude, naming the first diverging layer.  The files are written either way.
The conversion rules are in docs/torch.md; the converter is tools.export.torch_convert.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.cli import CliError, run_cli
from tools.export.blob_check import add_check_arguments, load_input, report_exit
from tools.export.torch_check import check
from tools.export.torch_convert import convert, write_module

PROG = "python -m tools.to_torch"


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("net", help="Caffe prototxt")
    ap.add_argument("weights", nargs="?", help="caffemodel (omit for random weights)")
    ap.add_argument("--out", required=True, type=Path,
                    help="the module to write, NAME.py (the weights go to NAME.pt beside it)")
    add_check_arguments(ap)
    return ap


def _run(args, prog: str) -> int:
    if args.out.suffix != ".py":
        raise CliError(f"{args.out}: --out must name a .py file (the weights go beside it, .pt)")
    if args.data is not None and not args.check:
        raise CliError("--data is only used with --check")
    report = None
    if args.check:
        module, report = check(args.net, args.weights, args.input, seed=args.seed,
                               data=load_input(args.data), tolerance=args.tolerance)
    else:
        module = convert(args.net, args.weights, args.input, seed=args.seed)
    source, weights = write_module(module, args.out)
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}"
                       for name, shape in module.inputs.items())
    print(f"{source}, {weights.name}: {len(module.state)} tensors, inputs {inputs}, outputs "
          f"{', '.join(module.outputs)}; weights: {module.weights}")
    return report_exit(report, prog)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args, prog), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
