"""python -m prototxt_gen MODEL_OR_ENCODING --out DIR: write every form of a model.

MODEL_OR_ENCODING is a name from caffe_models/*.yaml (df1, df1seg, df2seg1_d8, ...), one of the
paper's comparison nets from caffe_models/zoo/*.yaml (resnet50, mobilenet_v2, enet, ...) or an
encoding in the text form, e.g. "[(64,64,64),(128,128,128),(256,256,256,512)]:[K,32,128]".
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from dfseg.base.cli import hxw_argument, run_cli

from .generate import (FORMS, available_forms, default_data, default_forms, form_filename, net_for,
                       write_release_set)
from .models import load_model, model_names, resolve, zoo_names
from .netio import write_net

PROG = "python -m prototxt_gen"
# The Python layer that reads segmentation training pairs: the training package's
# (solvers/data_layers.py).  A command may name it; the generator (floor 1) takes it as data.
SEGMENTATION_PAIRS_READER = ("solvers.data_layers", "SegmentationDataLayer")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="model name or encoding")
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--forms", help=f"comma-separated subset of {', '.join(FORMS)} (default: every form "
                                        "of the model; the comparison nets have deploy and caffetime forms)")
    parser.add_argument("--input", type=hxw_argument,
                        help="HxW of the deploy and caffetime forms (default: test size)")
    parser.add_argument("--crop", type=hxw_argument, help="training crop (segmentation) or crop (classification)")
    parser.add_argument("--test-size", type=hxw_argument, help="validation image size (segmentation)")
    parser.add_argument("--val-list", help="image list of the validation data layer")
    parser.add_argument("--train-source", help="LMDB (classification) or list file (segmentation) for training")
    parser.add_argument("--num-classes", type=int, default=19, help="classes K of an encoded segmentation net")
    parser.add_argument("--release-set", action="store_true",
                        help="write every released file (df1.prototxt, df1seg_mergebn.prototxt, ...) into --out")
    parser.add_argument("--list", action="store_true", help="list the named models")
    return parser


def _write_forms(parser: argparse.ArgumentParser, args) -> None:
    model = resolve(args.model, num_classes=args.num_classes)
    forms = ([f.strip() for f in args.forms.split(",") if f.strip()] if args.forms
             else list(default_forms(model)))
    unknown = [f for f in forms if f not in available_forms(model)]
    if unknown:
        parser.error(f"unknown form(s) {', '.join(unknown)} of {model.name} "
                     f"(forms: {', '.join(available_forms(model))})")
    overrides = {k: v for k, v in (("crop", args.crop), ("test_size", args.test_size),
                                   ("val_list", args.val_list), ("train_source", args.train_source))
                 if v is not None}
    data = replace(default_data(model.net), pairs_reader=SEGMENTATION_PAIRS_READER, **overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    for form in forms:
        print(write_net(net_for(model, form, input_size=args.input, data=data),
                        args.out / form_filename(model.name, form)))


def _run(parser: argparse.ArgumentParser, args) -> int:
    if args.list:
        for name in model_names() + zoo_names():
            print(f"{name:16s} {load_model(name).net}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    if args.release_set:
        for path in write_release_set(args.out):
            print(path)
        return 0
    if args.model is None:
        parser.error("give a model name or an encoding (see --list)")
    _write_forms(parser, args)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or PROG
    parser = _parser(prog)
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(parser, args), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
