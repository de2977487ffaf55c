#!/usr/bin/env bash
# Check that a libcaffe.so holds the CUDA code of dfseg's own layers: each layer's
# Forward_gpu/Backward_gpu for float and double, and the host stubs of its CUDA kernels (a
# CPU_ONLY library has STUB_GPU's Forward_gpu too, but no kernels).  Prints what is missing
# and exits 1; prints nothing and exits 0 when all is there.
#
#   caffe/check_gpu_symbols.sh LIBCAFFE.so
set -euo pipefail
LIB=${1:?usage: check_gpu_symbols.sh LIBCAFFE.so}
[ -f "$LIB" ] || { echo "$LIB not found"; exit 1; }
SYMBOLS=$(nm -C "$LIB" 2>/dev/null || true)
missing=()
for layer in InterpLayer UpsampleLayer ShuffleChannelLayer; do
  for dtype in float double; do
    for pass in Forward_gpu Backward_gpu; do
      grep -qF "caffe::$layer<$dtype>::$pass(" <<<"$SYMBOLS" || missing+=("$layer<$dtype>::$pass")
    done
  done
done
for kernel in InterpForwardKernel InterpBackwardKernel UpsampleWritersKernel UpsampleForwardKernel \
              UpsampleBackwardKernel ShuffleChannelKernel; do
  # demangled "Kernel<float, ...>(", or nvcc's host stub "__device_stub__Z...KernelIf..."
  grep -qE "$kernel(<float|If)" <<<"$SYMBOLS" || missing+=("kernel $kernel<float>")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "${missing[*]}"
  exit 1
fi
