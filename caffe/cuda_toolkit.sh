#!/usr/bin/env bash
# Install the CUDA 13.0 compiler, headers and the libraries Caffe links (cudart, cuBLAS,
# cuRAND) from NVIDIA's PyPI wheels into a cache directory and print the toolkit root
# (bin/, nvvm/, include/, lib/ as CMake's FindCUDA expects them: the CUDA 13 wheels all
# install into one nvidia/cu13 tree).
#
#   caffe/cuda_toolkit.sh        (run from the repository root; prints the toolkit root)
#
# Why wheels: they are versioned and installed with pip by name, need no GPU and no driver,
# and give one toolkit on any x86-64 Linux with Python, whatever CUDA (if any) the machine
# has.  CUDA 13 because it is the first release whose wheels carry nvcc itself (the cu12
# "nvcc" wheels hold ptxas only).  It targets Turing (sm_75) to Hopper (sm_90) and later,
# and needs an NVIDIA driver >= 580 to run what it builds (docs/gpu.md: another toolkit).
# Environment: DFSEG_CACHE (default ~/.cache/dfseg), VENV_PYTHON (default .venv/bin/python:
# its pip does the install).  A second run with the same pins only prints the root.
set -euo pipefail

CACHE=${DFSEG_CACHE:-$HOME/.cache/dfseg}
VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
CUDA_VERSION=13.0
# Component versions of one CUDA 13.0 release: they travel together (nvcc, its headers, cudart).
WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
        nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35)
ROOT="$CACHE/cuda-$CUDA_VERSION"
TK="$ROOT/wheels/nvidia/cu13"
PIN=$(printf '%s\n' "${WHEELS[@]}" | sha256sum | cut -c1-16)

say() { echo "caffe/cuda_toolkit.sh: $*" >&2; }
die() { say "error: $*"; exit 2; }

if [ "$(cat "$ROOT/.complete" 2>/dev/null)" = "$PIN" ]; then
  echo "$TK"
  exit 0
fi
[ -x "$VENV_PYTHON" ] || die "$VENV_PYTHON not found: run 'make setup' first"
[ "$(uname -m)" = x86_64 ] || die "the pinned CUDA wheels are for x86_64 Linux only"

say "installing CUDA $CUDA_VERSION from PyPI wheels into $ROOT (about 1 GB, once)"
rm -rf "$ROOT"
mkdir -p "$ROOT"
# --no-cache-dir: the install itself is the cache; pip's would hold a second copy.
nice -n 19 "$VENV_PYTHON" -m pip install -q --no-cache-dir --no-deps --target "$ROOT/wheels" \
  "${WHEELS[@]}" || die "pip could not install ${WHEELS[*]}"

[ -d "$TK" ] || die "the CUDA wheels did not install $TK"
# What a toolkit install has and the wheels do not: nvcc.profile looks for headers and
# libraries under targets/<arch>-linux, FindCUDA under lib64, the linker for unversioned
# sonames (the wheels ship libcublas.so.13 etc. only).
mkdir -p "$TK/targets/x86_64-linux"
ln -sfn ../../include "$TK/targets/x86_64-linux/include"
ln -sfn ../../lib "$TK/targets/x86_64-linux/lib"
ln -sfn lib "$TK/lib64"
for so in "$TK"/lib/lib*.so.*; do
  plain="${so%%.so.*}.so"
  [ -e "$plain" ] || ln -s "$(basename "$so")" "$plain"
done

for f in bin/nvcc nvvm/bin/cicc include/cuda_runtime.h include/cublas_v2.h include/curand.h \
         include/cccl/thrust lib/libcudart.so lib/libcublas.so lib/libcurand.so; do
  [ -e "$TK/$f" ] || die "the CUDA wheels lack $f"
done
"$TK/bin/nvcc" --version | grep -q "release $CUDA_VERSION" || die "$TK/bin/nvcc is not CUDA $CUDA_VERSION"
echo "$PIN" > "$ROOT/.complete"
say "installed CUDA $CUDA_VERSION toolkit at $TK"
echo "$TK"
