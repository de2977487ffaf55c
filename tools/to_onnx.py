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
The exporters live in tools.export (graph, per-layer ops, whole net, check).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

from tools.caffe_locate import CaffeNotFound
from tools.export.caffe_net import CaffeNetError
from tools.export.caffemodel import CaffemodelError
from dfseg.base.atomic import atomic_write_bytes
from dfseg.base.cli import nchw_argument, one_line
from tools.export.blob_check import add_check_arguments, load_input, report_exit
from tools.export.onnx_check import CheckError, check
from tools.export.onnx_convert import SUPPORTED, check_supported, convert
from tools.export.onnx_graph import IR_VERSION, OPSET, UnsupportedLayerError

__all__ = ["convert", "check", "check_supported", "SUPPORTED", "OPSET", "IR_VERSION",
           "UnsupportedLayerError", "CheckError", "parse_shape", "main"]


parse_shape = nchw_argument   # --input NxCxHxW


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.to_onnx", description=__doc__.split("\n")[0])
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.weights and args.weights_option and args.weights != args.weights_option:
        print("to_onnx: error: WEIGHTS given twice (positional and --weights)", file=sys.stderr)
        return 2
    weights = args.weights or args.weights_option
    if args.data is not None and not args.check:
        print("to_onnx: error: --data is only used with --check", file=sys.stderr)
        return 2
    try:
        model, report = _export(args, weights)
    except (CaffeNetError, CaffemodelError, CaffeNotFound, onnx.checker.ValidationError) as err:
        print(f"to_onnx: error: {one_line(err)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, model.SerializeToString())  # a failed write keeps the old .onnx
    except OSError as err:
        where = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
        print(f"to_onnx: error: {where}", file=sys.stderr)
        return 2
    ins = ", ".join(f"{i.name} {tuple(d.dim_value for d in i.type.tensor_type.shape.dim)}"
                    for i in model.graph.input)
    outs = ", ".join(o.name for o in model.graph.output)
    source = weights or f"random weights (seed {args.seed})"
    print(f"{out}: {len(model.graph.node)} nodes, inputs {ins}, outputs {outs}; weights: {source}")
    return report_exit(report, "to_onnx")


if __name__ == "__main__":
    sys.exit(main())
