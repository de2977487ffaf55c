"""Caffe prototxt + caffemodel → ONNX, reproducing Caffe's arithmetic exactly.

    python -m tools.to_onnx NET [WEIGHTS] --out MODEL.onnx [--input 1x3x1024x2048]
    python -m tools.to_onnx NET --out MODEL.onnx --check [--weights W.caffemodel] [--data X.npy]

NET is any prototxt of ours, of the release or of the Caffe model zoo (Input layer, old-style
input_dim, or a data layer such as ImageData, which becomes a graph input of the --input
shape; labels and Accuracy/loss layers are dropped). Without WEIGHTS the model gets random
weights (`--seed`), which is what latency benchmarks need.

--check also runs the net in pycaffe on the same weights and input (random unless given) and
compares every blob each layer writes with its ONNX value; it exits 1 when any differs by
more than --tolerance (1e-4) relative to the blob's largest magnitude, naming the first
diverging layer. The model is written either way.

Where Caffe and ONNX differ the graph spells Caffe's semantics out:
- Pooling: Caffe's ceil-mode output size and last-window clip become explicit end padding;
  AVE divides by the window clipped to the *padded* input (zeros Pad + count_include_pad=0),
  MAX ignores padding; a mask top is MaxPool's indices turned into Caffe's per-plane index.
- Upsample (SegNet/ENet max-unpooling): MaxUnpool on MaxPool's indices (or the mask's).
- Interp (PSPNet's layer): Slice for pad_beg/pad_end crops, then Resize with
  coordinate_transformation_mode=align_corners to the size Caffe computes.
- BatchNorm: statistics divided by the stored moving-average factor (0 → statistics zeroed,
  as Caffe does), eps from the layer; the forks' BN: PSPNet's stored statistics, SegNet's
  INFERENCE scale and shift.
- ArgMax: ties go to the last index (Caffe sorts (value, index) pairs descending), output float.
Node names are Caffe layer names; every Caffe blob keeps its name for its final value.
The exporter lives in tools.export (`onnx_convert.convert`, `onnx_check.check`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_bytes
from dfseg.base.cli import CliError, run_cli
from tools.export.blob_check import add_check_arguments, load_input, report_exit
from tools.export.onnx_check import check
from tools.export.onnx_convert import convert

PROG = "python -m tools.to_onnx"


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("net", help="Caffe prototxt")
    ap.add_argument("weights", nargs="?", help="caffemodel (omit for random weights)")
    ap.add_argument("--weights", dest="weights_option", metavar="WEIGHTS",
                    help="caffemodel, as the positional WEIGHTS")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    add_check_arguments(ap)
    return ap


def _export(args, weights):
    """(model, check report or None)."""
    if not args.check:
        return convert(args.net, weights, args.input, seed=args.seed), None
    return check(args.net, weights, args.input, seed=args.seed, data=load_input(args.data),
                 tolerance=args.tolerance)


def _run(args, prog: str) -> int:
    if args.weights and args.weights_option and args.weights != args.weights_option:
        raise CliError("WEIGHTS given twice (positional and --weights)")
    weights = args.weights or args.weights_option
    if args.data is not None and not args.check:
        raise CliError("--data is only used with --check")
    model, report = _export(args, weights)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, model.SerializeToString())  # a failed write keeps the old .onnx
    ins = ", ".join(f"{i.name} {tuple(d.dim_value for d in i.type.tensor_type.shape.dim)}"
                    for i in model.graph.input)
    outs = ", ".join(o.name for o in model.graph.output)
    source = weights or f"random weights (seed {args.seed})"
    print(f"{out}: {len(model.graph.node)} nodes, inputs {ins}, outputs {outs}; weights: {source}")
    return report_exit(report, prog)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _run(args, prog), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
