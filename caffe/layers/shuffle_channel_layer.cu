#include <vector>

#include "caffe/layers/shuffle_channel_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

// One thread per destination value, gathering from its source channel.  Forward: output
// channel k * group + g reads input channel g * (C / group) + k; inverse: the other way.
template <typename Dtype>
__global__ void ShuffleChannelKernel(const int count, const Dtype* src, const int channels,
    const int plane, const int group, const bool inverse, Dtype* dst) {
  CUDA_KERNEL_LOOP(index, count) {
    const int per_group = channels / group;
    const int offset = index % plane;
    const int channel = (index / plane) % channels;
    const int image = index / (plane * channels);
    const int from = inverse ? (channel % per_group) * group + channel / per_group
                             : (channel % group) * per_group + channel / group;
    dst[index] = src[(image * channels + from) * plane + offset];
  }
}

}  // namespace

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const Dtype* src = bottom[0]->gpu_data();
  if (top[0] == bottom[0]) {
    caffe_copy(bottom[0]->count(), src, buffer_.mutable_gpu_data());
    src = buffer_.gpu_data();
  }
  const int count = top[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  ShuffleChannelKernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, src, channels_, plane_, group_, false, top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) { return; }
  const Dtype* src = top[0]->gpu_diff();
  if (top[0] == bottom[0]) {
    caffe_copy(top[0]->count(), src, buffer_.mutable_gpu_diff());
    src = buffer_.gpu_diff();
  }
  const int count = bottom[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  ShuffleChannelKernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, src, channels_, plane_, group_, true, bottom[0]->mutable_gpu_diff());
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(ShuffleChannelLayer);

}  // namespace caffe
