"""The engine layer on real engines: every CPU engine runs the same net on the same weights
and input (so their outputs agree), the caffe time engine times itself, and the LUT's
calibration is stored and applied."""
from __future__ import annotations

import numpy as np
import pytest

from prototxt_gen.generate import net_for
from tools.engines import EngineError, Protocol, compare, make_engine, prepare_net, time_one
from tools.engines.nets import explicit_interp_sizes

CPU_ENGINES = ("pycaffe", "opencv", "onnxruntime")


@pytest.fixture(scope="module")
def df1_small():
    return prepare_net(net_for("df1", "deploy_mergebn", input_size=(64, 64)))


def test_cpu_engines_agree_on_the_same_weights_and_input(caffe, df1_small):
    outputs = {}
    for name in CPU_ENGINES:
        with make_engine(name).prepare(df1_small) as run:
            (outputs[name],) = run.outputs().values()
    ref = outputs["pycaffe"]
    assert ref.shape == (1, 1000, 1, 1) or ref.size == 1000
    for name in ("opencv", "onnxruntime"):
        got = outputs[name].reshape(ref.shape)
        assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max(), name


def test_caffe_time_engine_times_itself_and_keeps_the_layers(caffe, df1_small):
    engine = make_engine("caffe-time")
    assert engine.describe()["clock"] == "caffe time"
    with engine.prepare(df1_small) as run:
        timing = time_one(run, Protocol(warmup=3, repeats=2, rounds=2))
        assert len(timing.samples_ms) == 2            # one average per `caffe time` run
        assert run.last["layers"] and run.last["iterations"] == 2   # the latest round
    assert timing.min_ms > 0


def test_interleaved_rounds_alternate_and_record_round_values(caffe, df1_small):
    bigger = prepare_net(net_for("df1", "deploy_mergebn", input_size=(128, 128)))
    engine = make_engine("onnxruntime")
    with engine.prepare(df1_small) as small, engine.prepare(bigger) as big:
        result = compare({"small": small, "big": big}, Protocol(warmup=1, repeats=3, rounds=4),
                         round_statistic="min")
    rounds = result["round_medians_ms"]
    assert len(rounds["small"]) == len(rounds["big"]) == 4
    assert np.median(rounds["big"]) > np.median(rounds["small"])   # 4x the pixels


def test_unknown_engine_and_bad_threads_are_one_line_errors():
    with pytest.raises(EngineError, match="unknown engine 'nope'"):
        make_engine("nope")
    with pytest.raises(EngineError, match="threads"):
        make_engine("onnxruntime", threads=0)


def test_explicit_interp_keeps_caffe_shapes(caffe, tmp_path):
    net = prepare_net(net_for("df1seg", "caffetime_mergebn", input_size=(256, 512)))
    rewritten = prepare_net(explicit_interp_sizes(net))
    assert rewritten.caffe_net.blob_shapes == net.caffe_net.blob_shapes


def test_a_net_that_cannot_fit_is_refused_in_one_line(df1_small, monkeypatch):
    from tools.engines import nets
    need = nets.caffe_memory_bytes(df1_small)
    assert need > 4 * sum(int(np.prod(s)) for s in df1_small.caffe_net.blob_shapes.values())  # + weights, im2col
    monkeypatch.setattr(nets, "available_bytes", lambda: need // 2)
    with pytest.raises(EngineError, match=r"needs about .* GiB .* available"):
        make_engine("caffe-time").prepare(df1_small)


def test_opencv_runs_df1seg_at_table4_size_as_caffe_does(caffe):
    """At 384x640 DF-Seg's pyramid pooling windows (sized for 1024x2048) exceed the 12x20
    feature map: Caffe clips them, OpenCV refuses them unless opencv_view rewrites them."""
    net = prepare_net(net_for("df1seg", "caffetime_mergebn", input_size=(384, 640)))
    with make_engine("pycaffe").prepare(net) as ref, make_engine("opencv").prepare(net) as cv:
        (want,), (got,) = ref.outputs().values(), cv.outputs().values()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_scaled_difference_names_a_missing_or_misshapen_output():
    from tools.engines.nets import scaled_difference
    want = {"y": np.array([[1.0, -4.0]])}
    assert scaled_difference({"y": np.array([[1.0, -3.0]])}, want) == pytest.approx(0.25)
    with pytest.raises(EngineError, match="output 'y'"):
        scaled_difference({"y": np.array([1.0, -3.0])}, want)            # another shape
    assert scaled_difference({"y": np.array([1.0, -4.0])}, want, reshape=True) == 0.0
    with pytest.raises(EngineError, match="output 'y'"):
        scaled_difference({}, want)
