#!/usr/bin/env bash
# Build BVLC Caffe 1.0 (OpenBLAS, pycaffe with Python layers) from Debian 11's source package
# plus dfseg's patches and own layers (caffe/layers: Interp, Upsample, ShuffleChannel, with
# their CUDA kernels), install it under a cache directory keyed by everything that goes into
# it, and point a link at it.  CPU_ONLY by default; --gpu (or DFSEG_CAFFE_GPU=1) builds the
# same Caffe with CUDA (no cuDNN) under its own cache key.
#
#   caffe/build.sh [--gpu] [LINK]   (LINK: build/caffe, or build/caffe-gpu with --gpu;
#                                    run from the repository root)
#
# Environment: DFSEG_CACHE (default ~/.cache/dfseg), VENV_PYTHON (default .venv/bin/python:
# its numpy headers are compiled into pycaffe), JOBS (default: number of cores),
# DFSEG_SKIP_APT=1 to never call apt-get, DFSEG_VERBOSE=1 to see every step's output as it
# comes (by default each step is one line, its output goes to DFSEG_LOG_DIR (default
# build/logs)/<caffe|caffe-gpu>-build.log and a failed step shows its last lines:
# mk/logged.sh).  GPU only: DFSEG_CUDA_ROOT (a CUDA toolkit to use;
# default: the CUDA 13.0 wheels caffe/cuda_toolkit.sh installs), DFSEG_CUDA_ARCHS (SASS
# targets, default "75 80 86 89 90": Turing to Hopper; PTX for the last one, which newer
# GPUs compile at load time).
# A second run with the same inputs only re-creates the link.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
GPU=${DFSEG_CAFFE_GPU:-0}
if [ "${1:-}" = --gpu ]; then GPU=1; shift; fi
if [ "$GPU" = 1 ]; then LINK=${1:-build/caffe-gpu}; else LINK=${1:-build/caffe}; fi
CACHE=${DFSEG_CACHE:-$HOME/.cache/dfseg}
VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
# Debian's interpreter, not a pyenv shim that may come first on PATH: pycaffe links its libpython.
SYSTEM_PYTHON=/usr/bin/python3
JOBS=${JOBS:-$(nproc)}

say() { echo "caffe/build.sh: $*" >&2; }
die() { say "error: $*"; exit 2; }
# logged_step LOG "what (how long)" COMMAND...: one line, the output into LOG, its tail on failure
source "$REPO/mk/logged.sh"

[ -x "$VENV_PYTHON" ] || die "$VENV_PYTHON not found: run 'make setup' first"
[ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON not found (Debian's python3 is needed)"
PY_MM=$("$SYSTEM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

FLAVOUR=caffe
MODE_KEY="cpu"
if [ "$GPU" = 1 ]; then
  FLAVOUR=caffe-gpu
  CUDA_ROOT=${DFSEG_CUDA_ROOT:-$(VENV_PYTHON="$VENV_PYTHON" bash caffe/cuda_toolkit.sh)}
  [ -x "$CUDA_ROOT/bin/nvcc" ] || die "no nvcc in $CUDA_ROOT/bin (DFSEG_CUDA_ROOT)"
  CUDA_ARCHS=${DFSEG_CUDA_ARCHS:-75 80 86 89 90}
  CUDA_PTX=${CUDA_ARCHS##* }
  NVCC_RELEASE=$("$CUDA_ROOT/bin/nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*' || true)
  [ -n "$NVCC_RELEASE" ] || die "$CUDA_ROOT/bin/nvcc --version names no release"
  MODE_KEY="gpu $NVCC_RELEASE; archs $CUDA_ARCHS; ptx $CUDA_PTX"
fi

# Everything that determines the installed bytes goes into the cache key.
mapfile -t INPUTS < <(find caffe/build.sh caffe/fetch_source.sh caffe/cuda_toolkit.sh caffe/check_gpu_symbols.sh caffe/patches caffe/layers caffe/pycaffe \
                         -type f \( -name '*.sh' -o -name '*.patch' -o -name '*.hpp' -o -name '*.cpp' \
                         -o -name '*.cu' -o -name '*.py' \) | LC_ALL=C sort)
KEY=$( { sha256sum "${INPUTS[@]}"; echo "python $PY_MM $(uname -m)"; if [ "$GPU" = 1 ]; then echo "$MODE_KEY"; fi; } |
      sha256sum | cut -c1-16)
PREFIX="$CACHE/$FLAVOUR/$KEY"

link_install() {
  mkdir -p "$(dirname "$LINK")"
  if [ "$(readlink "$LINK" 2>/dev/null)" != "$PREFIX" ]; then
    rm -rf "$LINK"
    ln -s "$PREFIX" "$LINK"
  fi
}

if [ -f "$PREFIX/.complete" ]; then
  link_install
  say "up to date: $LINK -> $PREFIX"
  exit 0
fi

LOG="${DFSEG_LOG_DIR:-$REPO/build/logs}/$FLAVOUR-build.log"
STEP="caffe/build.sh:"
if [ "$GPU" = 1 ]; then
  say "building Caffe with CUDA into $PREFIX: long from a clean cache (about 40 min here, docs/gpu.md), minutes with a warm ccache; log: ${LOG#"$REPO"/}"
else
  say "building Caffe (CPU) into $PREFIX: about 3-4 min on 2 cores from scratch, under a minute with a warm ccache; log: ${LOG#"$REPO"/}"
fi
mkdir -p "$(dirname "$LOG")"
: > "$LOG"

# ---- build dependencies (Debian 12 package names) ----
APT_PACKAGES=(build-essential cmake ccache pkg-config
  libopenblas-dev libboost-system-dev libboost-thread-dev libboost-filesystem-dev
  libboost-python-dev libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libhdf5-dev liblmdb-dev libleveldb-dev libsnappy-dev libopencv-dev python3-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "${DFSEG_SKIP_APT:-0}" = 1 ] && die "missing build dependencies: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  say "build dependencies missing: ${missing[*]}"
  logged_step "$LOG" "$STEP updating apt's package lists (under a minute)" $SUDO apt-get update
  logged_step "$LOG" "$STEP installing the build dependencies with apt (a few minutes on a fresh machine)" \
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- source tree: one fixed work directory per flavour, so ccache hits across cache keys ----
WORK="$CACHE/$FLAVOUR/work"
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock 9   # two builds at once would share the work tree
SRC="$WORK/src"
BLD="$WORK/build"
logged_step "$LOG" "$STEP fetching Caffe's Debian source package (under a minute)" bash caffe/fetch_source.sh "$SRC"
patch -s -p1 -d "$SRC" < caffe/patches/caffe-proto-pop-fork.patch
for p in caffe/patches/*.patch; do
  [ "$p" = caffe/patches/caffe-proto-pop-fork.patch ] || patch -s -p1 -d "$SRC" < "$p"
done
cp caffe/layers/*.hpp "$SRC/include/caffe/layers/"
for f in caffe/layers/*.cpp caffe/layers/*.cu; do
  if [ -e "$f" ]; then cp "$f" "$SRC/src/caffe/layers/"; fi
done

# ---- configure, build, install ----
# pycaffe is compiled against the venv's numpy (2.x) headers: such a module also runs on
# numpy >= 1.23.  FindNumPy asks PYTHON_EXECUTABLE, so show it the venv's site-packages.
VENV_SITE=$("$VENV_PYTHON" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')
export PYTHONPATH="$VENV_SITE${PYTHONPATH:+:$PYTHONPATH}"
export CCACHE_BASEDIR="$WORK"
rm -rf "$PREFIX"
# A layer source added since the last configure is only seen by a fresh CMake run (file glob).
rm -f "$BLD/CMakeCache.txt"
mkdir -p "$BLD"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
if [ "$GPU" = 1 ]; then
  # CUDA 12/13 know no Fermi..Pascal archs (Caffe's "All"/"Auto" lists): name modern ones.
  # The toolkit's lib directory becomes the installed RUNPATH (CMAKE_INSTALL_RPATH_USE_LINK_PATH).
  DEVICE=(-DCPU_ONLY=OFF -DUSE_CUDNN=OFF -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT"
          -DCUDA_ARCH_NAME=Manual -DCUDA_ARCH_BIN="$CUDA_ARCHS" -DCUDA_ARCH_PTX="$CUDA_PTX")
  if command -v ccache >/dev/null; then
    # FindCUDA runs nvcc itself (no compiler launcher): put ccache in front with a wrapper.
    printf '#!/bin/sh\nexec ccache "%s/bin/nvcc" "$@"\n' "$CUDA_ROOT" > "$WORK/nvcc-ccache"
    chmod +x "$WORK/nvcc-ccache"
    # (FindCUDA forgets a given nvcc when the toolkit root differs from its cached copy.)
    DEVICE+=(-DCUDA_NVCC_EXECUTABLE="$WORK/nvcc-ccache" -DCUDA_TOOLKIT_ROOT_DIR_INTERNAL="$CUDA_ROOT")
  fi
  CONFIGURE="CUDA: $NVCC_RELEASE, sm $CUDA_ARCHS + PTX $CUDA_PTX, no cuDNN; OpenBLAS, python $PY_MM"
  COMPILE="CUDA, 5 GPU archs: long, see docs/gpu.md; minutes with a warm ccache"
else
  DEVICE=(-DCPU_ONLY=ON)
  CONFIGURE="CPU_ONLY, OpenBLAS, python $PY_MM"
  COMPILE="about 3 min on 2 cores from scratch; seconds with a warm ccache"
fi
logged_step "$LOG" "$STEP configuring with CMake ($CONFIGURE)" \
  cmake -S "$SRC" -B "$BLD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  "${DEVICE[@]}" -DBLAS=Open -DUSE_OPENCV=ON -DUSE_LEVELDB=ON -DUSE_LMDB=ON -DUSE_NCCL=OFF \
  -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version="$PY_MM" \
  -DPYTHON_EXECUTABLE="$SYSTEM_PYTHON" -DBUILD_docs=OFF -DBUILD_matlab=OFF \
  "${LAUNCHER[@]}"
grep -q "NumPy ver. 2" "$LOG" || say "warning: pycaffe is not built against numpy 2 headers; it may not import under the venv's numpy"
if [ "$GPU" = 1 ]; then
  # Caffe's CMake quietly falls back to CPU_ONLY when it does not find CUDA.
  grep -q "CUDA detected" "$LOG" || die "CMake did not find CUDA in $CUDA_ROOT (log: $LOG)"
fi
# a parallel make's error can lie further up than the usual tail
DFSEG_LOG_TAIL=${DFSEG_LOG_TAIL:-80} logged_step "$LOG" "$STEP compiling with $JOBS jobs ($COMPILE)" \
  make -C "$BLD" -j"$JOBS"
logged_step "$LOG" "$STEP installing into the cache (seconds)" make -C "$BLD" install
if [ "$GPU" = 1 ]; then
  # A GPU library whose layers only fell back to the CPU would pass every CPU test: check
  # that our layers' GPU passes and their kernels are compiled in.
  missing=$(bash caffe/check_gpu_symbols.sh "$PREFIX/lib/libcaffe.so") ||
    die "$PREFIX/lib/libcaffe.so lacks CUDA code of our layers: $missing"
fi

# ---- pycaffe shares dfseg's schema module (one caffe.proto per process) ----
PYCAFFE="$PREFIX/lib/python3/dist-packages/caffe"
[ -f "$PYCAFFE/_caffe.so" ] || die "pycaffe was not built (see $LOG)"
mv "$PYCAFFE/proto/caffe_pb2.py" "$PYCAFFE/proto/caffe_pb2_protoc.py"
cp caffe/pycaffe/caffe_pb2.py "$PYCAFFE/proto/caffe_pb2.py"
cat > "$PREFIX/dfseg-build.txt" <<INFO
key $KEY
source caffe $(sed -n 's/^PKG_VERSION="\(.*\)"/\1/p' caffe/fetch_source.sh) (Debian 11 source package)
patches $(cd caffe/patches && echo *.patch)
layers $(cd caffe/layers && ls *.cpp | sed 's/_layer\.cpp$//' | tr '\n' ' ')
python $PY_MM; numpy headers $("$VENV_PYTHON" -c 'import numpy; print(numpy.__version__)')
device ${MODE_KEY}${CUDA_ROOT:+ (toolkit $CUDA_ROOT)}
INFO
touch "$PREFIX/.complete"
link_install
say "installed: $LINK -> $PREFIX"
