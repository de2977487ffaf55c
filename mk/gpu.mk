# The GPU half (docs/gpu.md): the CUDA Caffe with our layers' kernels, one GPU check, and the
# GPU kit.
.PHONY: caffe-gpu gpu-check gpu-kit

# CUDA 13.0 from PyPI wheels (caffe/cuda_toolkit.sh, cached under ~/.cache/dfseg/cuda-13.0),
# then the same Caffe as `make caffe` with CUDA, cached under ~/.cache/dfseg/caffe-gpu/<key>
# and linked at build/caffe-gpu.  Long from a clean cache (docs/gpu.md); never part of
# `make test`.  DFSEG_CUDA_ROOT=/usr/local/cuda-12.x builds against another toolkit.
caffe-gpu: setup
	bash caffe/build.sh --gpu build/caffe-gpu

# `make df1seg CAFFE_GPU=1`, `make bench CAFFE_GPU=1 ...`: the Caffe engines (caffe time,
# pycaffe) run on GPU 0 of the CUDA build instead of the CPU.
ifeq ($(CAFFE_GPU),1)
df1seg bench: caffe-gpu
export CAFFE_ROOT := $(abspath build/caffe-gpu)
export DFSEG_CAFFE_DEVICE ?= gpu:0
endif

# Every GPU check in one command (tools/gpu_check.py), summary in bench/gpu_check.json.
# Where the driver sees a GPU it builds `make caffe-gpu` first; without one it says so,
# skips every check and exits 0.  TensorRT is optional: pip install -e '.[tensorrt]'.
# Its `torch` check builds the GPU kit (below) into build/gpu-kit and runs the kit's run.py
# with .venv's PyTorch where that PyTorch sees a CUDA GPU (it skips, saying so, where not).
GPU_CHECK_ARGS ?=
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
gpu-check: setup $(if $(HAVE_GPU),caffe-gpu)
	$(PY) -m tools.gpu_check $(GPU_CHECK_ARGS)

# The GPU kit (docs/gpu.md, "The GPU kit"): DF1-Seg, ICNet and the other DF-Seg nets as plain
# PyTorch modules with run.py, a folder of a few hundred kB at build/gpu-kit to copy to any CUDA
# machine that has Python, NumPy and PyTorch (no dfseg, Caffe or protobuf there):
# `python run.py` checks the GPU against the CPU and times DF1-Seg against ICNet.
gpu-kit: setup
	$(PY) -m tools.gpu_kit --out build/gpu-kit
