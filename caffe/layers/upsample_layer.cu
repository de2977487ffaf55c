#include <climits>
#include <vector>

#include "caffe/layers/upsample_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

// Per input value: its target in the output plane.  The highest input index aiming at an
// output wins it (atomicMax), which is the value the serial CPU loop writes last.  A target
// outside the plane is recorded (lowest offending index, the one the CPU loop meets first).
template <typename Dtype>
__global__ void UpsampleWritersKernel(const int count, const Dtype* mask, const int in_size,
    const int out_size, int* writer, int* bad_index) {
  CUDA_KERNEL_LOOP(index, count) {
    const int target = static_cast<int>(mask[index]);
    if (target < 0 || target >= out_size) {
      atomicMin(bad_index, index);
    } else {
      atomicMax(writer + (index / in_size) * out_size + target, index % in_size);
    }
  }
}

// Per output value: the value of its last writer, zero where nobody wrote.
template <typename Dtype>
__global__ void UpsampleForwardKernel(const int count, const Dtype* values,
    const int* writer, const int in_size, const int out_size, Dtype* out) {
  CUDA_KERNEL_LOOP(index, count) {
    const int w = writer[index];
    out[index] = w >= 0 ? values[(index / out_size) * in_size + w] : Dtype(0);
  }
}

// Per input value: the gradient at its target if it was the last writer there, else zero.
template <typename Dtype>
__global__ void UpsampleBackwardKernel(const int count, const Dtype* top_diff,
    const Dtype* mask, const int* writer, const int in_size, const int out_size,
    Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, count) {
    const int out = (index / in_size) * out_size + static_cast<int>(mask[index]);
    bottom_diff[index] = writer[out] == index % in_size ? top_diff[out] : Dtype(0);
  }
}

}  // namespace

template <typename Dtype>
void UpsampleLayer<Dtype>::FindWritersGpu(const Blob<Dtype>& mask, int out_size) {
  const int count = mask.count();
  const int in_size = mask.height() * mask.width();
  gpu_writer_.Reshape(1, 1, 1, (count / in_size) * out_size);
  gpu_bad_index_.Reshape(1, 1, 1, 1);
  caffe_gpu_set(gpu_writer_.count(), -1, gpu_writer_.mutable_gpu_data());
  caffe_gpu_set(1, INT_MAX, gpu_bad_index_.mutable_gpu_data());
  // NOLINT_NEXT_LINE(whitespace/operators)
  UpsampleWritersKernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, mask.gpu_data(), in_size, out_size, gpu_writer_.mutable_gpu_data(),
      gpu_bad_index_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
  // One int back to the host per pass: the price of the CPU layer's fatal error message.
  const int bad = gpu_bad_index_.cpu_data()[0];
  if (bad != INT_MAX) {
    LOG(FATAL) << "Upsample " << this->layer_param_.name() << ": mask index "
        << mask.cpu_data()[bad] << " lies outside the " << out_size << "-pixel output plane";
  }
}

template <typename Dtype>
void UpsampleLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int in_size = bottom[0]->height() * bottom[0]->width();
  const int out_size = top[0]->height() * top[0]->width();
  FindWritersGpu(*bottom[1], out_size);
  const int count = top[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  UpsampleForwardKernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), gpu_writer_.gpu_data(), in_size, out_size,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void UpsampleLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  // The mask is piecewise constant in everything upstream: its gradient is zero.
  if (propagate_down[1]) {
    caffe_gpu_set(bottom[1]->count(), Dtype(0), bottom[1]->mutable_gpu_diff());
  }
  if (!propagate_down[0]) { return; }
  const int in_size = bottom[0]->height() * bottom[0]->width();
  const int out_size = top[0]->height() * top[0]->width();
  FindWritersGpu(*bottom[1], out_size);   // the mask may have changed since forward
  const int count = bottom[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  UpsampleBackwardKernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, top[0]->gpu_diff(), bottom[1]->gpu_data(), gpu_writer_.gpu_data(), in_size,
      out_size, bottom[0]->mutable_gpu_diff());
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(UpsampleLayer);

}  // namespace caffe
