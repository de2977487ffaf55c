"""Property-based fuzzing of the command-line entry points (issue 11): generated encodings,
prototxts mutated from generated nets (cuts, deletions, duplications, foreign tokens, extreme
numbers), Caffe logs and caffemodel bytes go to ``main(argv)`` of prototxt_gen,
tools.analyze, tools.merge_bn, tools.to_onnx, tools.caffe_time parse and pop space.

Every call must return 0 or 2, never raise, never print a traceback or an "internal error";
a failure (2) is one stderr line (warnings aside; merge_bn's misfit list is one line plus its
indented problems).

Size: a small deterministic slice runs in ``make test`` (DFSEG_FUZZ_SLICE examples per
target, default 30); ``make fuzz`` sets DFSEG_FUZZ_EXAMPLES (the total over all targets,
default 12000 there) and DFSEG_FUZZ_REPORT (a JSON file with the counts and times).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pop.__main__ import main as pop_main
from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig
from prototxt_gen.__main__ import main as generate_main
from prototxt_gen.generate import net_for, to_text
from prototxt_gen.netio import GLOG_MAX_MESSAGE_BYTES
from tools.analyze import main as analyze_main
from tools.caffe_time import main as caffe_time_main
from tools.export.caffemodel import caffemodel_bytes
from tools.merge_bn import main as merge_bn_main
from tools.to_onnx import main as to_onnx_main
from tools.to_torch import main as to_torch_main

TARGETS = ("encoding", "prototxt", "log", "merge_bn", "to_onnx", "to_torch", "pop_space")
_TOTAL = int(os.environ.get("DFSEG_FUZZ_EXAMPLES", "0") or 0)
PER_TARGET = math.ceil(_TOTAL / len(TARGETS)) if _TOTAL else int(os.environ.get("DFSEG_FUZZ_SLICE", "30"))
FUZZ = settings(max_examples=PER_TARGET, deadline=None, derandomize=not _TOTAL, database=None,
                suppress_health_check=list(HealthCheck))
COUNTS: dict[str, int] = {}
REFUSED: dict[str, int] = {}     # of those, calls that returned 2
SECONDS: dict[str, float] = {}

TINY_BN_NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
"""
ODD_LAYERS_NET = """name: "odd"
input: "data" input_dim: 1 input_dim: 4 input_dim: 17 input_dim: 15
layer { name: "slice" type: "Slice" bottom: "data" top: "a" top: "b" slice_param { axis: 1 slice_point: 1 } }
layer { name: "crop" type: "Crop" bottom: "b" bottom: "a" top: "c" crop_param { axis: 2 offset: 1 } }
layer { name: "deconv" type: "Deconvolution" bottom: "c" top: "d" convolution_param { num_output: 2 kernel_size: 4 stride: 2 } }
layer { name: "interp" type: "Interp" bottom: "d" top: "e" interp_param { shrink_factor: 2 pad_beg: 0 pad_end: 0 } }
layer { name: "concat" type: "Concat" bottom: "e" bottom: "e" top: "f" }
layer { name: "pool" type: "Pooling" bottom: "f" top: "g" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "reshape" type: "Reshape" bottom: "g" top: "h" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "flat" type: "Flatten" bottom: "h" top: "i" }
layer { name: "sum" type: "Eltwise" bottom: "i" bottom: "i" top: "j" eltwise_param { operation: PROD } }
"""
CAFFE_TIME_LOG = """I1204 20:12:47.187361 13683 caffe.cpp:343] Use CPU.
I1204 20:12:47.187361 13683 net.cpp:53] Initializing net from parameters: 
{net}I1204 20:12:47.188481 13683 layer_factory.hpp:77] Creating layer data
I1204 20:12:47.188500 13683 net.cpp:94] Top shape: 1 3 8 8 (192)
I1204 20:12:47.262530 13683 caffe.cpp:365] *** Benchmark begins ***
I1204 20:12:47.262533 13683 caffe.cpp:366] Testing for 2 iterations.
I1204 20:12:47.338882 13683 caffe.cpp:394] Iteration: 1 forward-backward time: 76 ms.
I1204 20:12:47.338882 13683 caffe.cpp:394] Iteration: 2 forward-backward time: 75.5 ms.
I1204 20:12:47.339224 13683 caffe.cpp:397] Average time per layer: 
I1204 20:12:47.339246 13683 caffe.cpp:400]       data	forward: 0.004 ms.
I1204 20:12:47.339258 13683 caffe.cpp:403]       data	backward: 0.001 ms.
I1204 20:12:47.339246 13683 caffe.cpp:400]       conv	forward: 1.25 ms.
I1204 20:12:47.339258 13683 caffe.cpp:403]       conv	backward: 2.5e-01 ms.
I1204 20:12:47.342623 13683 caffe.cpp:408] Average Forward pass: 16.979 ms.
I1204 20:12:47.342628 13683 caffe.cpp:410] Average Backward pass: 59.345 ms.
I1204 20:12:47.342630 13683 caffe.cpp:412] Average Forward-Backward: 80 ms.
I1204 20:12:47.342634 13683 caffe.cpp:414] Total Time: 160 ms.
I1204 20:12:47.342638 13683 caffe.cpp:415] *** Benchmark ends ***
"""
SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                    {"block": "basic", "widths": [256, 512], "min_depth": 1, "max_depth": 2}],
         "input_size": [224, 224], "num_classes": 10, "latency_ms": [0.0, 1e9]}

# tokens a mutation splices in: structure, fields and types of the schema, extreme numbers
TOKENS = ["{", "}", "<", ">", "[", "]", ":", ",", ";", '"', "'", "#", "\n", " ", "\\", "layer {", "}\n",
          'bottom: "data"', 'top: "x"', 'type: "Concat"', 'type: "Python"', 'type: "Interp"', "name: ",
          "input_param { shape { dim: 1 } }", "kernel_size:", "stride: 0", "pad: -3", "axis: 7",
          "num_output: 0", "group: 3", "dim: -1", "ceil_mode: false", "bn_param { frozen: true }",
          "phase: TRAIN", "include { phase: TEST }", "layers {", "input_dim: 0", "0", "-1", "1e309",
          "-0.0", "nan", "inf", "2147483648", "18446744073709551616", "0x7f", "TRUE", "⁴", "６",
          "\u00e9", "\x00", "\ufeff", "K", "/", "(", ")", "512", "1024", "d8"]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
WORD = re.compile(r"[A-Za-z_]+")


def _record(target: str, started: float) -> None:
    COUNTS[target] = COUNTS.get(target, 0) + 1
    SECONDS[target] = SECONDS.get(target, 0.0) + time.perf_counter() - started


@pytest.fixture(scope="module", autouse=True)
def fuzz_report():
    yield
    total = sum(COUNTS.values())
    print(f"\nfuzz: {total} examples ({', '.join(f'{k} {v} ({REFUSED.get(k, 0)} refused)' for k, v in COUNTS.items())}), "
          f"{sum(SECONDS.values()):.1f} s in the entry points")
    if os.environ.get("DFSEG_FUZZ_REPORT"):
        report = {"examples": total, "per_target": COUNTS, "refused": REFUSED, "seconds": {k: round(v, 2) for k, v in SECONDS.items()}}
        Path(os.environ["DFSEG_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1) + "\n")


def run_cli(target: str, main, argv: list[str]) -> tuple[int, str]:
    """Call ``main(argv)``; assert the CLI contract; return (status, stderr)."""
    err, started = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:     # argparse refusing an argument: its usage line, status 2
            code = e.code
    _record(target, started)
    REFUSED[target] = REFUSED.get(target, 0) + (code == 2)
    text = err.getvalue()
    if os.environ.get("DFSEG_FUZZ_LOG"):   # what the entry points said, to see what a run reached
        with open(os.environ["DFSEG_FUZZ_LOG"], "a") as log:
            log.write(f"{target}\t{code}\t{' '.join(text.split())[:300]}\n")
    assert "Traceback" not in text and "internal error" not in text, text
    assert code in (0, 2), (code, text)
    if code == 2:
        lines = [ln for ln in text.splitlines() if ln.strip() and not re.search(r"(^|: )warning:", ln, re.I)]
        assert lines, "status 2 without a message"
        if "problems):" in lines[0]:
            assert all(ln.startswith("  ") for ln in lines[1:]), text
        else:
            assert len(lines) == 1 or lines[0].startswith("usage:"), text
    return code, text


@st.composite
def mutated(draw, bases: list[str]) -> str:
    text = draw(st.sampled_from(bases))
    for _ in range(draw(st.integers(0, 3))):
        # numbers changed in place keep the text parseable most often: they reach the shape
        # rules, the folding and the exporter instead of stopping at the parser
        op = draw(st.sampled_from(["cut", "delete", "duplicate", "insert", "word"] + ["number"] * 5))
        at = int(draw(st.floats(0, 1)) * len(text))
        if op == "cut":
            text = text[:at]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 80)):]
        elif op == "duplicate":
            text = text[:at] + text[at:at + draw(st.integers(1, 200))] + text[at:]
        elif op == "insert":
            piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12)))
            text = text[:at] + piece + text[at:]
        else:
            pattern = NUMBER if op == "number" else WORD
            spots = list(pattern.finditer(text))
            if spots:
                m = spots[draw(st.integers(0, len(spots) - 1))]
                new = draw(st.sampled_from(TOKENS)) if op == "word" else draw(st.sampled_from(
                    ["0", "1", "2", "3", "4", "5", "7", "16", "64", "100", "-1", "-2", "2147483647",
                     "2147483648", "-2147483649", "99999999999999999999", "1e309", "nan", "-inf", "0.5", "007"]))
                text = text[:m.start()] + new + text[m.end():]
    return text


@st.composite
def mutated_bytes(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "insert", "delete"] + ["flip"] * 4))
        at = int(draw(st.floats(0, 1)) * len(data))
        if op == "cut":
            del data[at:]
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


@functools.cache
def _bases() -> dict:
    nets = [to_text(net_for("df1", "deploy", input_size=(64, 64))),
            to_text(net_for("df1seg", "deploy", input_size=(128, 256))),
            to_text(net_for("dflite_seg", "train")), TINY_BN_NET, ODD_LAYERS_NET]
    rng = np.random.default_rng(0)
    weights = {"conv": [rng.normal(size=(4, 3, 3, 3))],
               "bn": [rng.normal(size=4), rng.uniform(0.5, 2, size=4), np.ones(1)],
               "scale": [rng.uniform(0.5, 1.5, size=4), rng.normal(size=4)],
               "fc": [rng.normal(size=(5, 36)), rng.normal(size=5)]}
    space = yaml.safe_dump(SPACE)
    lut = json.dumps(table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).to_json())
    return {"nets": nets, "caffemodel": caffemodel_bytes(weights, "tiny"), "space": space, "lut": lut,
            "logs": [CAFFE_TIME_LOG.format(net=TINY_BN_NET), CAFFE_TIME_LOG.format(net="")]}


def _write(folder: str, name: str, content: str | bytes) -> str:
    path = Path(folder) / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8", errors="surrogatepass"))
    return str(path)


WIDTH = st.sampled_from([64, 128, 256, 512, 1024])
# (mid, out) pairs; mid None is a basic block
BLOCK = st.tuples(st.one_of(st.none(), WIDTH), WIDTH)
ODD = st.sampled_from([None] * 12 + ["32", "0", "-64", "65", "6⁴", "６４", "1e3", "", " ", "2048", "64/32"])


def _backbone(stages: list[list[tuple]], odd: str | None, where: int) -> str:
    """Widths made to grow as the encodings require, then now and then one they refuse."""
    out = mid = 0
    text = []
    for blocks in stages:
        parts = []
        for m, o in blocks:
            out = max(out, o)
            if m is None:
                parts.append(str(out))
            else:
                mid = min(max(mid, m), out)
                parts.append(f"{mid}/{out}")
        text.append(parts)
    if odd is not None:
        text[where % len(text)].insert(where % 3, odd)
    return "[" + ",".join("(" + ",".join(p) + ")" for p in text) + "]"


BACKBONE = st.builds(_backbone, st.sampled_from([3] * 8 + [2, 4]).flatmap(
    lambda n: st.lists(st.lists(BLOCK, min_size=1, max_size=4), min_size=n, max_size=n)), ODD, st.integers(0, 9))
WC = st.lists(st.sampled_from(["K", "32", "64", "128", "512", "19", "7", "0", "k", ""]), max_size=4).map(
    lambda cs: "[" + ",".join(cs) + "]")
GOOD_WC = st.lists(st.sampled_from(["K", "32", "64", "128", "256", "512"]), min_size=3, max_size=3).map(
    lambda cs: "[" + ",".join(cs) + "]")
STRUCTURED = st.builds(lambda b, w, d: b + (":" + w if w else "") + (":d8" if d and w else ""), BACKBONE,
                       st.one_of(st.just(""), GOOD_WC, GOOD_WC, WC), st.booleans())
ENCODING = st.one_of(
    STRUCTURED, STRUCTURED, STRUCTURED, STRUCTURED,
    mutated(["[(64,64,64),(128,128,128),(256,256,256,512)]:[K,32,128]", "[(64,64),(128/512),(256,512)]",
             "df1seg", "df2seg1_d8"]),
    st.text(max_size=40))


@FUZZ
@given(encoding=ENCODING, form=st.sampled_from(["deploy", "train", "caffetime_mergebn", "val_mergebn"]),
       classes=st.sampled_from(["19", "19", "19", "1", "1000", "0", "-3"]))
def test_fuzz_generator(encoding, form, classes):
    with tempfile.TemporaryDirectory() as out:
        code, _ = run_cli("encoding", generate_main, [encoding, "--out", out, "--forms", form,
                                                      "--num-classes", classes, "--input", "64x128"])
        if code == 2:
            assert not list(Path(out).iterdir()), "a refused encoding left files"


@FUZZ
@given(data=st.data(), as_log=st.booleans(), unknown=st.booleans(), json_out=st.booleans(),
       size=st.sampled_from([None, "1x3x64x64", "1x3x7x9", "2x1x16x16"]), phase=st.sampled_from([None, "TRAIN", "TEST"]))
def test_fuzz_analyze(data, as_log, unknown, json_out, size, phase):
    bases = _bases()
    text = data.draw(mutated(bases["nets"]))
    if as_log:   # the net as Caffe's log prints it, glog's 30000-byte cut included
        text = CAFFE_TIME_LOG.format(net=text)[:GLOG_MAX_MESSAGE_BYTES + 500]
    with tempfile.TemporaryDirectory() as folder:
        argv = [_write(folder, "net.prototxt", text)]
        argv += ["--allow-unknown-fields"] * unknown + ["--json"] * json_out
        argv += ["--input", size] if size else []
        argv += ["--phase", phase] if phase else []
        run_cli("prototxt", analyze_main, argv)


@FUZZ
@given(data=st.data())
def test_fuzz_caffe_time_parse(data):
    bases = _bases()
    with tempfile.TemporaryDirectory() as folder:
        log = _write(folder, "time.log", data.draw(mutated(bases["logs"])))
        run_cli("log", caffe_time_main, ["parse", log, "--json"])


@FUZZ
@given(data=st.data(), damage_net=st.booleans())
def test_fuzz_merge_bn(data, damage_net):
    bases = _bases()
    net = data.draw(mutated([TINY_BN_NET])) if damage_net else TINY_BN_NET
    weights = data.draw(st.one_of(st.just(bases["caffemodel"]), mutated_bytes(bases["caffemodel"]),
                                  st.binary(max_size=64)))
    with tempfile.TemporaryDirectory() as folder:
        old = {"out.prototxt": b"old prototxt", "out.caffemodel": b"old weights"}
        for name, content in old.items():
            _write(folder, name, content)
        code, _ = run_cli("merge_bn", merge_bn_main, [
            _write(folder, "net.prototxt", net), _write(folder, "w.caffemodel", weights),
            "--out-net", str(Path(folder) / "out.prototxt"), "--out-weights", str(Path(folder) / "out.caffemodel")])
        if code == 2:   # a refusal leaves the previous pair byte for byte
            assert all((Path(folder) / n).read_bytes() == c for n, c in old.items())


def _fuzz_exporter(data, with_weights, size, target, main, out_name):
    """A mutated net (and maybe mutated weights) through one exporter's CLI."""
    bases = _bases()
    net = data.draw(mutated([TINY_BN_NET]))
    with tempfile.TemporaryDirectory() as folder:
        argv = [_write(folder, "net.prototxt", net)]
        if with_weights:
            argv.append(_write(folder, "w.caffemodel", data.draw(mutated_bytes(bases["caffemodel"]))))
        argv += ["--out", str(Path(folder) / out_name)] + (["--input", size] if size else [])
        run_cli(target, main, argv)


EXPORT_SIZES = st.sampled_from([None, "1x3x8x8", "1x3x9x5", "1x1x8x8"])


@FUZZ
@given(data=st.data(), with_weights=st.booleans(), size=EXPORT_SIZES)
def test_fuzz_to_onnx(data, with_weights, size):
    _fuzz_exporter(data, with_weights, size, "to_onnx", to_onnx_main, "net.onnx")


@FUZZ
@given(data=st.data(), with_weights=st.booleans(), size=EXPORT_SIZES)
def test_fuzz_to_torch(data, with_weights, size):
    _fuzz_exporter(data, with_weights, size, "to_torch", to_torch_main, "net.py")


@FUZZ
@given(data=st.data(), which=st.sampled_from(["space", "lut", "both"]), binary=st.booleans())
def test_fuzz_pop_space(data, which, binary):
    bases = _bases()
    space, lut = bases["space"], bases["lut"]
    if which in ("space", "both"):
        space = data.draw(mutated([space]))
    if which in ("lut", "both"):
        lut = data.draw(mutated([lut]))
    with tempfile.TemporaryDirectory() as folder:
        space_path = _write(folder, "space.yaml", data.draw(st.binary(max_size=32)) if binary else space)
        lut_path = _write(folder, "lut.json", lut)
        run_cli("pop_space", pop_main, ["space", "--space", space_path, "--lut", lut_path, "--allow-foreign-lut"])


# ------------------------------------------------------------------ what the fuzzer found
# Each was a traceback or a broken line before its fix; kept here as plain examples.

@pytest.mark.parametrize("change, target, main", [
    # protobuf quotes the bad source line; a \r in it split the error into two lines
    (('type: "Scale"', 'type: 0\r"Scale"'), "prototxt", analyze_main),
    (('type: "Scale"', 'type: 0\u2028"Scale"'), "to_onnx", to_onnx_main),
    # a layer type with an escaped carriage return ("Sc\\rale") printed as it is
    (('type: "Scale"', 'type: "Sc\\rale"'), "prototxt", analyze_main),
    (('type: "Scale"', 'type: "Sc\\rale"'), "to_onnx", to_onnx_main),
    # a negative input dimension reached numpy: "negative dimensions are not allowed"
    (("dim: 3 dim: 8", "dim: -1 dim: 8"), "to_onnx", to_onnx_main),
    # a second Pooling top (Caffe's max mask) read by the next layer: KeyError in the exporter
    # (since the exporter learnt the mask it exports; a clean exit either way)
    (('type: "Pooling" bottom: "conv" top: "pool"', 'type: "Pooling" top: "x" bottom: "conv" top: "pool"'),
     "to_onnx", to_onnx_main),
    # 2**31 channels: random weights tried to allocate 576 GiB (MemoryError)
    (("dim: 3 dim: 8", "dim: 2147483647 dim: 8"), "to_onnx", to_onnx_main),
])
def test_found_by_the_fuzzer(tmp_path, change, target, main):
    net = _write(str(tmp_path), "net.prototxt", TINY_BN_NET.replace(*change))
    argv = [net] + (["--out", str(tmp_path / "net.onnx")] if main is to_onnx_main else [])
    expected = {0, 2} if "Pooling" in change[0] else {2}
    assert run_cli(target, main, argv)[0] in expected
