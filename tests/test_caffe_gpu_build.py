"""The CUDA Caffe of `make caffe-gpu` (build/caffe-gpu): its library holds our layers' GPU
passes and CUDA kernels, links CUDA, and its CPU mode computes what the CPU build computes.
The GPU build is long and not part of `make test`: these tests skip where it was not built.
The check itself is shown to fail on the CPU build, which has STUB_GPU passes and no kernels."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.runtime.caffe import BUILT_CAFFE_GPU
from tools.gpu.layers import LAYER_CASES, _forward_backward

REPO = Path(__file__).resolve().parent.parent
CHECK = REPO / "caffe" / "check_gpu_symbols.sh"
GPU_LIB = BUILT_CAFFE_GPU / "lib" / "libcaffe.so"


@pytest.fixture(scope="module")
def gpu_lib() -> Path:
    if not GPU_LIB.is_file():
        pytest.skip(f"no CUDA Caffe at {BUILT_CAFFE_GPU}: `make caffe-gpu` builds it (long, "
                    "not part of `make test`)")
    return GPU_LIB


def _symbols(lib: Path) -> str:
    return subprocess.run(["nm", "-C", str(lib)], capture_output=True, text=True, check=True).stdout


def test_cpu_build_fails_the_check(caffe):
    from tools.runtime.caffe import caffe_root
    lib = caffe_root() / "lib" / "libcaffe.so"
    assert "caffe::InterpLayer<float>::Forward_gpu(" in _symbols(lib)   # STUB_GPU's stub
    done = subprocess.run(["bash", str(CHECK), str(lib)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "kernel InterpForwardKernel<float>" in done.stdout
    assert "Forward_gpu" not in done.stdout


def test_gpu_library_holds_the_cuda_interp_symbols(gpu_lib):
    symbols = _symbols(gpu_lib)
    for layer in ("InterpLayer", "UpsampleLayer", "ShuffleChannelLayer"):
        for dtype in ("float", "double"):
            for name in ("Forward_gpu", "Backward_gpu"):
                assert f"caffe::{layer}<{dtype}>::{name}(" in symbols, (layer, dtype, name)
    assert "InterpForwardKernel" in symbols and "InterpBackwardKernel" in symbols
    done = subprocess.run(["bash", str(CHECK), str(gpu_lib)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_gpu_library_links_cuda_from_its_toolkit(gpu_lib):
    dynamic = subprocess.run(["readelf", "-d", str(gpu_lib)], capture_output=True, text=True,
                             check=True).stdout
    for soname in ("libcublas.so", "libcurand.so"):
        assert soname in dynamic
    missing = subprocess.run(["ldd", str(gpu_lib)], capture_output=True, text=True).stdout
    assert "not found" not in missing, missing


CPU_MODE_SCRIPT = """
import json, sys
import numpy as np
from tools.runtime.caffe import import_caffe
from tools.gpu.layers import LAYER_CASES, _forward_backward
caffe = import_caffe()
out = {}
for i, case in enumerate(LAYER_CASES):
    for key, value in _forward_backward(caffe, case, None).items():
        out[f"{i}:{key}"] = value
np.savez(sys.argv[1], **out)
print(json.dumps(list(caffe.layer_type_list())))
"""


def test_gpu_build_in_cpu_mode_equals_the_cpu_build(gpu_lib, caffe, tmp_path):
    """Without a GPU, the CUDA build still imports and runs on the CPU (no driver needed until
    a GPU call), and our layers there compute exactly what the CPU build computes."""
    env = dict(os.environ, CAFFE_ROOT=str(BUILT_CAFFE_GPU))
    done = subprocess.run([sys.executable, "-c", CPU_MODE_SCRIPT, str(tmp_path / "gpu_build.npz")],
                          capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Interp" in json.loads(done.stdout.splitlines()[-1])
    theirs = np.load(tmp_path / "gpu_build.npz")
    for i, case in enumerate(LAYER_CASES):
        for key, value in _forward_backward(caffe, case, None).items():
            np.testing.assert_array_equal(theirs[f"{i}:{key}"], value, err_msg=f"{case.name} {key}")
