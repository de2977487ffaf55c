"""Log parsers against the authors' released logs, and against damaged / foreign variants."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from tools.report.log_parsers import (LogParseError, parse_caffe_test, parse_caffe_time,
                               parse_tensorrt_profile, read_log)

CAFFE_TIME = "log_df1seg_mergebn_caffetime_titanx.txt"
PROFILE_SCORE = "log_df1seg_profile_score_1024x2048_1080ti.txt"
PROFILE_UP8 = "log_df1seg_profile_scoreup8_1024x2048_1080ti.txt"
CAFFE_TEST = "log_df1_val.txt"


@pytest.fixture(scope="module")
def logs(reference_dir):
    d = reference_dir / "release" / "log"
    return {name: read_log(d / name) for name in (CAFFE_TIME, PROFILE_SCORE, PROFILE_UP8, CAFFE_TEST)}


# ------------------------------------------------------------------------- caffe time

def test_caffe_time_release_log(logs):
    text = logs[CAFFE_TIME]
    r = parse_caffe_time(text, CAFFE_TIME)
    assert r["forward_ms"] == 32.5541
    assert r["backward_ms"] == 30.9262
    assert round(r["fps"], 1) == 30.7
    assert r["iterations"] == 100
    assert r["input_shape"] == [1, 3, 1024, 2048]
    assert r["device"] == "GPU 1"
    # one entry per layer that has a per-layer average line, in printed order
    assert len(r["layers"]) == text.count("\tforward: ")
    assert r["layers"][0] == {"name": "input", "forward_ms": 0.00137312, "backward_ms": 0.00170048}
    assert r["layers"][1] == {"name": "conv1", "forward_ms": 1.37754, "backward_ms": 2.38897}
    assert r["layers"][-1]["name"] == "Decoder_score.up8" and r["layers"][-1]["forward_ms"] == 7.7448
    # the per-layer averages roughly add up to the forward pass (they exclude the net's overhead)
    assert sum(l["forward_ms"] for l in r["layers"]) == pytest.approx(r["forward_ms"], rel=0.05)


def test_caffe_time_truncated_names_file_and_figure(logs):
    text = logs[CAFFE_TIME]
    cut = text[:text.index("Iteration: 50 ")]
    with pytest.raises(LogParseError) as e:
        parse_caffe_time(cut, "some/run.log")
    msg = str(e.value)
    assert msg.startswith("some/run.log:") and "Average Forward pass" in msg and "truncated" in msg


def test_caffe_time_tolerates_noise_crlf_and_appended_runs(logs):
    text = logs[CAFFE_TIME]
    noisy = "\n".join(line + ("\nprogress 42% |####   |\x1b[0m" if i % 7 == 0 else "")
                      for i, line in enumerate(text.splitlines()))
    assert parse_caffe_time(noisy.replace("\n", "\r\n"))["forward_ms"] == 32.5541
    # Two runs appended: the second (last complete) one counts, and its own layer table.
    second = text.replace("32.5541", "40.0000").replace("conv1\tforward: 1.37754", "conv1\tforward: 9.5")
    r = parse_caffe_time(text + "\n" + second)
    assert r["forward_ms"] == 40.0
    assert next(l for l in r["layers"] if l["name"] == "conv1")["forward_ms"] == 9.5
    # ...but an appended run cut short does not hide the complete one before it.
    partial = second[:second.index("Iteration: 3 ")]
    assert parse_caffe_time(text + "\n" + partial)["forward_ms"] == 32.5541


def test_caffe_time_forward_only_and_iteration_fallbacks(logs):
    text = logs[CAFFE_TIME]
    forward_only = "\n".join(l for l in text.splitlines() if "backward" not in l.lower())
    r = parse_caffe_time(forward_only)
    assert r["backward_ms"] is None and all(l["backward_ms"] is None for l in r["layers"])
    no_count = re.sub(r".*Testing for \d+ iterations.*\n", "", text)
    assert parse_caffe_time(no_count)["iterations"] == 100          # Total Time / Forward-Backward
    no_totals = re.sub(r".*(Testing for|Total Time|Forward-Backward).*\n", "", text)
    assert parse_caffe_time(no_totals)["iterations"] == 100         # the "Iteration: k" lines


def test_caffe_time_rejects_other_logs(logs):
    for other in (PROFILE_UP8, CAFFE_TEST):
        with pytest.raises(LogParseError, match="does not look like `caffe time`"):
            parse_caffe_time(logs[other], other)


# ------------------------------------------------------------------- TensorRT profile

@pytest.mark.parametrize("name, total, fps, output, n_layers", [
    (PROFILE_SCORE, 7.304, 136.9, "Decoder_score", 55),
    (PROFILE_UP8, 9.427, 106.1, "Decoder_score.up8", 56),
])
def test_tensorrt_profile_release_logs(logs, name, total, fps, output, n_layers):
    text = logs[name]
    r = parse_tensorrt_profile(text, name)
    assert r["total_ms"] == total
    assert round(r["fps"], 1) == fps
    assert r["outputs"] == [output] and r["inputs"] == ["data"]
    assert r["net"] == "prototxt/df1seg_mergebn_caffetime.prototxt"
    assert len(r["layers"]) == n_layers
    assert r["layers"][0] == {"name": "conv1 + conv1/relu", "ms": 0.321 if name == PROFILE_UP8 else 0.316}
    # names cut at 40 columns stay as printed
    assert "res2.1.skipConv + res2.1.sum + res2.1.re" in [l["name"] for l in r["layers"]]
    assert r["layer_sum_ms"] == pytest.approx(total, abs=0.01)
    assert r["layers"][-1]["name"] == output


def test_tensorrt_profile_truncated_and_appended(logs):
    text = logs[PROFILE_UP8]
    cut = text[:text.index("Time over all layers")]
    with pytest.raises(LogParseError, match=r"run\.txt: no 'Time over all layers'.*56 per-layer"):
        parse_tensorrt_profile(cut, "run.txt")
    # Two profiles appended (e.g. score then scoreup8): the last one, with its own layers.
    r = parse_tensorrt_profile(logs[PROFILE_SCORE] + "noise line\n" + text)
    assert r["total_ms"] == 9.427 and len(r["layers"]) == 56
    with pytest.raises(LogParseError, match="not look like a TensorRT profile"):
        parse_tensorrt_profile(logs[CAFFE_TEST], CAFFE_TEST)


# ------------------------------------------------------------------------- caffe test

def test_caffe_test_release_log(logs):
    r = parse_caffe_test(logs[CAFFE_TEST], CAFFE_TEST)
    assert r["top1"] == 0.697761 and round(r["top1"] * 100, 2) == 69.78
    assert r["top5"] == 0.887801
    assert r["batches"] == 500
    assert r["outputs"] == {"accuracy/top-1": 0.697761, "accuracy/top-5": 0.887801}


def test_caffe_test_truncated_and_other_formats(logs):
    text = logs[CAFFE_TEST]
    cut = text[:text.index("] Loss:")]
    with pytest.raises(LogParseError, match=r"df1\.log: no final .*500 batch\(es\).*truncated"):
        parse_caffe_test(cut, "df1.log")
    # A net with a loss layer and a plain "accuracy" output (another run's format).
    other = ("I0101 00:00:00.000000  1 caffe.cpp:304] Batch 0, accuracy = 0.5\n"
             "I0101 00:00:00.000000  1 caffe.cpp:304] Batch 0, loss = 1.5\n"
             "I0101 00:00:00.000000  1 caffe.cpp:309] Loss: 1.5\n"
             "I0101 00:00:00.000000  1 caffe.cpp:321] accuracy = 0.5\n"
             "I0101 00:00:00.000000  1 caffe.cpp:321] loss = 1.5 (* 1 = 1.5 loss)\n")
    r = parse_caffe_test(other)
    assert r["top1"] == 0.5 and r["top5"] is None and r["loss"] == 1.5 and r["outputs"]["loss"] == 1.5
    with pytest.raises(LogParseError, match="no accuracy output"):
        parse_caffe_test(other.replace("accuracy", "recall"))


# ------------------------------------------------------------------------- robustness

def test_read_log_errors_and_binary(tmp_path):
    with pytest.raises(LogParseError, match="missing.txt: cannot read log"):
        read_log(tmp_path / "missing.txt")
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(bytes(range(256)) * 4)
    text = read_log(garbage)
    for parse in (parse_caffe_time, parse_tensorrt_profile, parse_caffe_test):
        with pytest.raises(LogParseError, match="garbage.txt"):
            parse(text, "garbage.txt")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Time over all layers:0123456789.ms \n\t\rIBatch,=accuracy/top-1Loss]"
                                             "Average Forward pass*Benchmark begins") + ["\x00", "é"]),
               max_size=400))
def test_parsers_fail_only_with_logparseerror(text):
    for parse in (parse_caffe_time, parse_tensorrt_profile, parse_caffe_test):
        try:
            parse(text, "fuzz")
        except LogParseError as e:
            assert str(e).startswith("fuzz: ")


def test_cli(reference_dir):
    import json
    import subprocess
    import sys
    log = reference_dir / "release" / "log" / CAFFE_TIME
    p = subprocess.run([sys.executable, "-m", "tools.parse_log", "caffe-time", str(log)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["forward_ms"] == 32.5541 and "layers" not in out
    p = subprocess.run([sys.executable, "-m", "tools.parse_log", "tensorrt-profile", str(log)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and CAFFE_TIME in p.stderr and "Traceback" not in p.stderr


def test_one_caffe_time_reader(reference_dir, capsys):
    """`tools.caffe_time parse` and `tools.parse_log caffe-time` are one parser and one printer."""
    import json
    from tools.caffe_time import main as caffe_time_main
    from tools.parse_log import main as parse_log_main
    log = str(reference_dir / "release" / "log" / CAFFE_TIME)
    assert caffe_time_main(["parse", log, "--json"]) == 0
    from_caffe_time = capsys.readouterr().out
    assert parse_log_main(["caffe-time", log, "--layers"]) == 0
    assert capsys.readouterr().out == from_caffe_time
    assert json.loads(from_caffe_time)["forward_ms"] == 32.5541


def test_caffe_test_appended_runs(logs):
    text = logs[CAFFE_TEST]
    second = text.replace("accuracy/top-1 = 0.697761", "accuracy/top-1 = 0.5")
    second = "\n".join(l for l in second.splitlines() if not re.search(r"Batch (\d{3}),", l))  # 100 batches
    r = parse_caffe_test(text + "\n" + second)
    assert r["top1"] == 0.5 and r["batches"] == 100
    partial = second[:second.index("Batch 50,")]
    r = parse_caffe_test(text + "\n" + partial)          # a cut-short second run: the first one counts
    assert r["top1"] == 0.697761 and r["batches"] == 500


def test_caffe_time_glog_with_year_in_prefix(logs):
    """Newer glog (Debian 12's) prints I20261121 instead of I0308: same figures."""
    import re
    text = re.sub(r"^([IWEF])(\d{4}) ", r"\g<1>2019\2 ", logs[CAFFE_TIME], flags=re.M)
    assert "I20190308 15:13:33" in text
    r = parse_caffe_time(text, CAFFE_TIME)
    assert r["forward_ms"] == 32.5541 and len(r["layers"]) == text.count("\tforward: ")
