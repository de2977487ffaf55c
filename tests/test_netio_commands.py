"""The commands over the net as Caffe sees it (prototxt_gen, analyze, compare_prototxt,
merge_bn, to_onnx, to_torch): one size parser, main(argv, prog) through run_cli, every
bad-input error an InputError; and floor 1 naming no higher floor."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dfseg.base.errors import InputError
from prototxt_gen import __main__ as generate_cli
from prototxt_gen.encoding import EncodingError
from prototxt_gen.generate import DataConfig, default_data, net_for
from prototxt_gen.models import resolve
from prototxt_gen.netio import NetDefinitionError, NetReadError
from prototxt_gen.netprep import AnalysisError
from prototxt_gen.shapes import ShapeError
from tools import analyze, compare_prototxt, merge_bn, to_onnx, to_torch
from tools.export.blob_check import CheckError
from tools.export.caffe_net import CaffeNetError, UnsupportedLayerError
from tools.export.caffemodel import CaffemodelError
from tools.export.merge_bn import MergeError

REPO = Path(__file__).resolve().parent.parent
NET = REPO / "tests" / "missing.prototxt"   # never read: argparse refuses the size first

NON_ASCII = "\uff11x3x64x64"   # a full-width 1: int() reads it, dfseg's size parser does not


@pytest.mark.parametrize("main, argv", [
    (analyze.main, [str(NET), "--input", NON_ASCII]),
    (analyze.main, [str(NET), "--input", "1x3x64x64", "--shape", "label=" + NON_ASCII]),
    (to_onnx.main, [str(NET), "--out", "x.onnx", "--input", NON_ASCII]),
    (to_torch.main, [str(NET), "--out", "x.py", "--input", NON_ASCII]),
    (generate_cli.main, ["df1", "--out", "d", "--input", "\uff16\uff14x64"]),
    (generate_cli.main, ["df1seg", "--out", "d", "--crop", "64x\uff16\uff14"]),
    (generate_cli.main, ["df1seg", "--out", "d", "--test-size", "\u0664x64"]),   # Arabic-Indic 4
], ids=["analyze-input", "analyze-shape", "to_onnx", "to_torch", "generate-input",
        "generate-crop", "generate-test-size"])
def test_sizes_in_non_ascii_digits_are_refused(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv, prog="dfseg x")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "ASCII digits" in err and err.startswith("usage: dfseg x")


@pytest.mark.parametrize("main", [analyze.main, compare_prototxt.main, merge_bn.main,
                                  to_onnx.main, to_torch.main, generate_cli.main])
def test_prog_names_the_command(main, capsys):
    with pytest.raises(SystemExit):
        main(["--help"], prog="dfseg some-name")
    assert capsys.readouterr().out.startswith("usage: dfseg some-name")


@pytest.mark.parametrize("main, argv", [
    (analyze.main, [str(NET)]),
    (compare_prototxt.main, [str(NET), str(NET)]),
    (merge_bn.main, [str(NET), str(NET), "--out-net", "a", "--out-weights", "b"]),
    (to_onnx.main, [str(NET), "--out", "x.onnx"]),
])
def test_bad_input_is_one_line_from_run_cli(main, argv, capsys):
    assert main(argv, prog="dfseg cmd") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dfseg cmd: error: {NET}: cannot read") and err.count("\n") == 1


@pytest.mark.parametrize("error", [NetDefinitionError, NetReadError, AnalysisError, ShapeError,
                                   CaffeNetError, UnsupportedLayerError, CaffemodelError,
                                   CheckError, MergeError, EncodingError])
def test_errors_mean_bad_input(error):
    assert issubclass(error, InputError)


def test_floor_one_names_no_higher_floor():
    """prototxt_gen's library modules name no solvers/pop/tools module, not even in a string;
    the generator's command (a command module, above every floor) passes the training
    package's data layer in."""
    named = re.compile(r"\b(solvers|pop|tools)\.[a-z_]+")
    offenders = [f"{path.relative_to(REPO)}: {m.group(0)}"
                 for path in sorted((REPO / "prototxt_gen").rglob("*.py"))
                 if path.name != "__main__.py"
                 for m in named.finditer(path.read_text())]
    assert not offenders, offenders


def test_the_segmentation_reader_is_the_callers():
    from solvers.net_data import SEGMENTATION_READER
    assert generate_cli.SEGMENTATION_PAIRS_READER == SEGMENTATION_READER
    plain = net_for("df1seg", "train")
    assert plain.layer[0].type == "Python" and not plain.layer[0].python_param.module
    data = DataConfig(**{**default_data(resolve("df1seg").net).__dict__,
                         "pairs_reader": ("my.module", "MyLayer")})
    given = net_for("df1seg", "train", data=data)
    assert [(l.python_param.module, l.python_param.layer) for l in given.layer[:2]] == \
        [("my.module", "MyLayer")] * 2


def test_the_command_writes_the_training_packages_reader(tmp_path, capsys):
    assert generate_cli.main(["df1seg", "--forms", "train", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "df1seg_train.prototxt").read_text()
    assert text.count('module: "solvers.data_layers"') == 2
    assert text.count('layer: "SegmentationDataLayer"') == 2


def test_one_parser_for_blob_shapes():
    from dfseg.base.sizes import SizeError, parse_shape
    assert parse_shape("8") == (8,) and parse_shape(" 1 x3X64x64 ") == (1, 3, 64, 64)
    for bad in ("", "1x", "x1", "1x0", "1*3", NON_ASCII, "1x-3"):
        with pytest.raises(SizeError):
            parse_shape(bad)
