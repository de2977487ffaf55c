"""tools.runtime.caffe (and its command, tools.caffe_locate) finds dfseg's Caffe and rejects a Caffe without the Interp layer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.runtime.caffe import BUILT_CAFFE, CaffeNotFound, caffe_binary, caffe_root, import_caffe

REPO = Path(__file__).resolve().parent.parent


def locate(env_overrides: dict, code: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CAFFE_ROOT", "PYTHONPATH")}
    env.update(env_overrides)
    args = [sys.executable, "-c", code] if code else [sys.executable, "-m", "tools.caffe_locate"]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_finds_the_make_caffe_build():
    try:
        caffe = import_caffe()
    except CaffeNotFound as e:
        pytest.fail(f"{e}")
    assert "Interp" in caffe.layer_type_list()
    assert caffe_root() == BUILT_CAFFE.resolve()
    assert caffe_binary().is_file() and os.access(caffe_binary(), os.X_OK)
    # pycaffe and dfseg share one schema module, so messages pass between them.
    from prototxt_gen import caffe_pb2
    assert caffe.proto.caffe_pb2 is caffe_pb2


def test_cli_reports_the_build():
    result = locate({})
    assert result.returncode == 0, result.stderr
    assert str(BUILT_CAFFE.resolve()) in result.stdout


def test_caffe_root_without_caffe_is_a_clear_error(tmp_path):
    result = locate({"CAFFE_ROOT": str(tmp_path)})
    assert result.returncode == 2
    assert "CAFFE_ROOT" in result.stderr and "Traceback" not in result.stderr


def test_caffe_without_interp_is_rejected_by_its_layer_registry(tmp_path):
    """A user's pycaffe whose layer registry lacks Interp (a stock BVLC build)."""
    package = tmp_path / "python" / "caffe"
    package.mkdir(parents=True)
    (package / "_caffe.so").write_bytes(b"")
    (package / "__init__.py").write_text(
        "def layer_type_list():\n    return ['Convolution', 'ReLU', 'Input']\n")
    result = locate({"CAFFE_ROOT": str(tmp_path)})
    assert result.returncode == 2
    assert "no Interp layer" in result.stderr and "make caffe" in result.stderr


def test_caffe_without_interp_is_rejected_by_its_library(tmp_path):
    """A user's Caffe with only the binary and library (no pycaffe)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    binary = tmp_path / "bin" / "caffe"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    (tmp_path / "lib" / "libcaffe.so").write_bytes(b"\0ConvolutionLayer\0ReLULayer\0")
    code = ("from tools.runtime.caffe import caffe_binary, CaffeNotFound\n"
            "try:\n    caffe_binary()\nexcept CaffeNotFound as e:\n    print(e)\n")
    result = locate({"CAFFE_ROOT": str(tmp_path)}, code)
    assert "no Interp layer" in result.stdout
    # ... and the same layout with Interp in the library is accepted.
    (tmp_path / "lib" / "libcaffe.so").write_bytes(b"\0ConvolutionLayer\0InterpLayer\0")
    result = locate({"CAFFE_ROOT": str(tmp_path)}, code.replace("print(e)", "print('rejected')")
                    + "else:\n    print('accepted')\n")
    assert result.stdout.strip() == "accepted", result.stderr


def test_repository_caffe_directory_does_not_shadow_pycaffe():
    """From the repository root `import caffe` finds caffe/ (build scripts) as a namespace
    package; import_caffe must still return pycaffe."""
    code = ("import caffe\nassert not hasattr(caffe, 'layer_type_list')\n"
            "from tools.runtime.caffe import import_caffe\n"
            "print('Interp' in import_caffe().layer_type_list())\n")
    result = locate({}, code)
    assert result.stdout.strip() == "True", result.stderr
