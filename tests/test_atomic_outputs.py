"""A failed write keeps the previous file byte for byte (disk full, a folder in the way), and
merge_bn's prototxt + caffemodel pair is never half new."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from google.protobuf import text_format

from prototxt_gen import caffe_pb2
from tools import merge_bn
from tools.export.caffemodel import write_caffemodel
from dfseg.base import atomic

TINY_BN_NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
"""


@pytest.fixture
def tiny_pair(tmp_path):
    net_path = tmp_path / "tiny.prototxt"
    net_path.write_text(TINY_BN_NET)
    rng = np.random.default_rng(0)
    weights = {"conv": [rng.normal(size=(4, 3, 3, 3))],
               "bn": [rng.normal(size=4), rng.uniform(0.5, 2, size=4), np.ones(1)],
               "scale": [rng.uniform(0.5, 1.5, size=4), rng.normal(size=4)]}
    weights_path = tmp_path / "tiny.caffemodel"
    write_caffemodel(weights_path, weights, "tiny")
    return net_path, weights_path


def _disk_full_on_write(monkeypatch, after_bytes=10):
    """Every file written through dfseg.base.atomic fails with ENOSPC after a few bytes."""
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self._f, self._n = f, 0

        def write(self, data):
            self._n += len(data)
            if self._n > after_bytes:
                raise OSError(errno.ENOSPC, "No space left on device", self._f.name)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k)))


def test_merge_bn_pair_survives_a_full_disk(tiny_pair, tmp_path, monkeypatch, capsys):
    net_path, weights_path = tiny_pair
    out_net, out_weights = tmp_path / "out.prototxt", tmp_path / "out.caffemodel"
    assert merge_bn.main([str(net_path), str(weights_path), "--out-net", str(out_net),
                          "--out-weights", str(out_weights)]) == 0
    before = out_net.read_bytes(), out_weights.read_bytes()
    capsys.readouterr()
    merged = text_format.Parse(out_net.read_text(), caffe_pb2.NetParameter())
    assert [layer.type for layer in merged.layer] == ["Input", "Convolution"]

    _disk_full_on_write(monkeypatch)
    code = merge_bn.main([str(net_path), str(weights_path), "--out-net", str(out_net),
                          "--out-weights", str(out_weights)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left" in err
    assert (out_net.read_bytes(), out_weights.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["tiny.prototxt", "tiny.caffemodel", "out.prototxt", "out.caffemodel"])


def test_merge_bn_output_folder_in_the_way(tiny_pair, tmp_path, capsys):
    net_path, weights_path = tiny_pair
    (tmp_path / "taken").mkdir()
    code = merge_bn.main([str(net_path), str(weights_path), "--out-net", str(tmp_path / "taken"),
                          "--out-weights", str(tmp_path / "w.caffemodel")])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory" in err and err.count("\n") == 1
    assert not (tmp_path / "w.caffemodel").exists()


def test_merge_bn_refuses_an_empty_net(tmp_path, capsys):
    empty = tmp_path / "empty.prototxt"
    empty.write_text("")
    weights = tmp_path / "w.caffemodel"
    write_caffemodel(weights, {"conv": [np.zeros((1, 1, 1, 1))]}, "x")
    code = merge_bn.main([str(empty), str(weights), "--out-net", str(tmp_path / "o.prototxt"),
                          "--out-weights", str(tmp_path / "o.caffemodel")])
    assert code == 2 and "no layers" in capsys.readouterr().err
    assert not (tmp_path / "o.caffemodel").exists()


def test_generator_keeps_the_old_prototxt_on_a_full_disk(tmp_path, monkeypatch):
    from prototxt_gen.__main__ import main as generate_main
    assert generate_main(["df1", "--forms", "deploy", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.iterdir()
    before = path.read_bytes()
    _disk_full_on_write(monkeypatch, after_bytes=100)
    assert generate_main(["df1", "--forms", "deploy", "--out", str(tmp_path)]) == 2
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
