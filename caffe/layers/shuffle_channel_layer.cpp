#include <vector>

#include "caffe/layers/shuffle_channel_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_GE(bottom[0]->num_axes(), 2) << "ShuffleChannel " << name
      << ": bottom must have a channel axis (N x C x ...)";
  group_ = static_cast<int>(this->layer_param_.shuffle_channel_param().group());
  num_ = bottom[0]->shape(0);
  channels_ = bottom[0]->shape(1);
  plane_ = bottom[0]->count(2);
  CHECK_GE(group_, 1) << "ShuffleChannel " << name << ": group must be >= 1";
  CHECK_EQ(channels_ % group_, 0) << "ShuffleChannel " << name << ": " << channels_
      << " channels do not split into " << group_ << " groups";
  top[0]->ReshapeLike(*bottom[0]);
  if (top[0] == bottom[0]) {
    buffer_.ReshapeLike(*bottom[0]);
  }
}

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Permute(const Dtype* src, Dtype* dst, bool inverse) const {
  const int per_group = channels_ / group_;
  for (int n = 0; n < num_; ++n) {
    const Dtype* s = src + n * channels_ * plane_;
    Dtype* d = dst + n * channels_ * plane_;
    for (int g = 0; g < group_; ++g) {
      for (int k = 0; k < per_group; ++k) {
        const int grouped = g * per_group + k, shuffled = k * group_ + g;
        const int from = inverse ? shuffled : grouped, to = inverse ? grouped : shuffled;
        caffe_copy(plane_, s + from * plane_, d + to * plane_);
      }
    }
  }
}

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const Dtype* src = bottom[0]->cpu_data();
  if (top[0] == bottom[0]) {
    caffe_copy(bottom[0]->count(), src, buffer_.mutable_cpu_data());
    src = buffer_.cpu_data();
  }
  Permute(src, top[0]->mutable_cpu_data(), false);
}

template <typename Dtype>
void ShuffleChannelLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) { return; }
  const Dtype* src = top[0]->cpu_diff();
  if (top[0] == bottom[0]) {
    caffe_copy(top[0]->count(), src, buffer_.mutable_cpu_diff());
    src = buffer_.cpu_diff();
  }
  Permute(src, bottom[0]->mutable_cpu_diff(), true);
}

#ifdef CPU_ONLY
STUB_GPU(ShuffleChannelLayer);
#endif

INSTANTIATE_CLASS(ShuffleChannelLayer);
REGISTER_LAYER_CLASS(ShuffleChannel);

}  // namespace caffe
