#include <vector>

#include "caffe/layers/interp_layer.hpp"
#include "caffe/util/gpu_util.cuh"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

// One thread per output value.  The taps are the host's (InterpLayer::ComputeTaps), so the
// sampling positions and weights are the CPU layer's, bit for bit; the arithmetic is the
// CPU expression in the same order.
template <typename Dtype, typename Tap>
__global__ void InterpForwardKernel(const int count, const Dtype* in, const int in_h,
    const int in_w, const int out_h, const int out_w, const Tap* taps_h, const Tap* taps_w,
    Dtype* out) {
  CUDA_KERNEL_LOOP(index, count) {
    const int x = index % out_w;
    const int y = (index / out_w) % out_h;
    const int plane = index / (out_w * out_h);
    const Tap ty = taps_h[y], tx = taps_w[x];
    const Dtype* row_lo = in + (plane * in_h + ty.lo) * in_w;
    const Dtype* row_hi = in + (plane * in_h + ty.hi) * in_w;
    out[index] =
        ty.w_lo * (tx.w_lo * row_lo[tx.lo] + tx.w_hi * row_lo[tx.hi]) +
        ty.w_hi * (tx.w_lo * row_hi[tx.lo] + tx.w_hi * row_hi[tx.hi]);
  }
}

// One thread per output gradient, scattered to its (up to four) source pixels.  Neighbouring
// outputs share sources, hence the atomic adds; padding taps have weight 0 and add nothing.
template <typename Dtype, typename Tap>
__global__ void InterpBackwardKernel(const int count, const Dtype* top_diff, const int in_h,
    const int in_w, const int out_h, const int out_w, const Tap* taps_h, const Tap* taps_w,
    Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, count) {
    const int x = index % out_w;
    const int y = (index / out_w) % out_h;
    const int plane = index / (out_w * out_h);
    const Tap ty = taps_h[y], tx = taps_w[x];
    Dtype* row_lo = bottom_diff + (plane * in_h + ty.lo) * in_w;
    Dtype* row_hi = bottom_diff + (plane * in_h + ty.hi) * in_w;
    const Dtype gy_lo = ty.w_lo * top_diff[index];
    const Dtype gy_hi = ty.w_hi * top_diff[index];
    caffe_gpu_atomic_add(tx.w_lo * gy_lo, row_lo + tx.lo);
    caffe_gpu_atomic_add(tx.w_hi * gy_lo, row_lo + tx.hi);
    caffe_gpu_atomic_add(tx.w_lo * gy_hi, row_hi + tx.lo);
    caffe_gpu_atomic_add(tx.w_hi * gy_hi, row_hi + tx.hi);
  }
}

}  // namespace

template <typename Dtype>
void InterpLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  const Tap* taps_h = static_cast<const Tap*>(taps_h_mem_->gpu_data());
  const Tap* taps_w = static_cast<const Tap*>(taps_w_mem_->gpu_data());
  // NOLINT_NEXT_LINE(whitespace/operators)
  InterpForwardKernel<Dtype, Tap><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), bottom[0]->height(), bottom[0]->width(),
      top[0]->height(), top[0]->width(), taps_h, taps_w, top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void InterpLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) { return; }
  Dtype* bottom_diff = bottom[0]->mutable_gpu_diff();
  caffe_gpu_set(bottom[0]->count(), Dtype(0), bottom_diff);
  const int count = top[0]->count();
  const Tap* taps_h = static_cast<const Tap*>(taps_h_mem_->gpu_data());
  const Tap* taps_w = static_cast<const Tap*>(taps_w_mem_->gpu_data());
  // NOLINT_NEXT_LINE(whitespace/operators)
  InterpBackwardKernel<Dtype, Tap><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, top[0]->gpu_diff(), bottom[0]->height(), bottom[0]->width(),
      top[0]->height(), top[0]->width(), taps_h, taps_w, bottom_diff);
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(InterpLayer);

}  // namespace caffe
