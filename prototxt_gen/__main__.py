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

from .encoding import EncodingError
from .generate import FORMS, _default_data, available_forms, default_forms, form_filename, net_for, to_text
from .models import UnknownModelError, load_model, model_names, resolve, zoo_names
from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import one_line, run_cli


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 1024x2048, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def write_release_set(out: Path) -> list[Path]:
    """Every file of the authors' release, under the release's own file names."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in model_names():
        model = load_model(name)
        for kind, filename in model.release_files.items():
            form = "val" if kind == "bn" else "val_mergebn"
            path = out / filename
            atomic_write_text(path, to_text(net_for(model, form)))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prototxt_gen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="model name or encoding")
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--forms", help=f"comma-separated subset of {', '.join(FORMS)} (default: every form "
                                        "of the model; the comparison nets have deploy and caffetime forms)")
    parser.add_argument("--input", type=_hw, help="HxW of the deploy and caffetime forms (default: test size)")
    parser.add_argument("--crop", type=_hw, help="training crop (segmentation) or crop (classification)")
    parser.add_argument("--test-size", type=_hw, help="validation image size (segmentation)")
    parser.add_argument("--val-list", help="image list of the validation data layer")
    parser.add_argument("--train-source", help="LMDB (classification) or list file (segmentation) for training")
    parser.add_argument("--num-classes", type=int, default=19, help="classes K of an encoded segmentation net")
    parser.add_argument("--release-set", action="store_true",
                        help="write every released file (df1.prototxt, df1seg_mergebn.prototxt, ...) into --out")
    parser.add_argument("--list", action="store_true", help="list the named models")
    args = parser.parse_args(argv)
    def run() -> int:
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
        model = resolve(args.model, num_classes=args.num_classes)
        forms = ([f.strip() for f in args.forms.split(",") if f.strip()] if args.forms
                 else list(default_forms(model)))
        unknown = [f for f in forms if f not in available_forms(model)]
        if unknown:
            parser.error(f"unknown form(s) {', '.join(unknown)} of {model.name} "
                         f"(forms: {', '.join(available_forms(model))})")
        data = _default_data(model.net)
        overrides = {k: v for k, v in (("crop", args.crop), ("test_size", args.test_size),
                                       ("val_list", args.val_list), ("train_source", args.train_source))
                     if v is not None}
        data = replace(data, **overrides)
        args.out.mkdir(parents=True, exist_ok=True)
        for form in forms:
            path = args.out / form_filename(model.name, form)
            atomic_write_text(path, to_text(net_for(model, form, input_size=args.input, data=data)))
            print(path)
        return 0

    return run_cli(run, "prototxt_gen", expected=(EncodingError, UnknownModelError,))


if __name__ == "__main__":
    sys.exit(main())
