#include <vector>

#include "caffe/layers/upsample_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void UpsampleLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_EQ(bottom[0]->num_axes(), 4) << "Upsample " << name
      << ": bottom[0] must be N x C x H x W";
  CHECK(bottom[1]->shape() == bottom[0]->shape()) << "Upsample " << name
      << ": the mask " << bottom[1]->shape_string() << " must have the shape of the data "
      << bottom[0]->shape_string();
  const UpsampleParameter& p = this->layer_param_.upsample_param();
  const int scale_h = p.has_scale_h() ? p.scale_h() : p.scale();
  const int scale_w = p.has_scale_w() ? p.scale_w() : p.scale();
  const int out_h = p.has_upsample_h() ? static_cast<int>(p.upsample_h())
      : bottom[0]->height() * scale_h - static_cast<int>(p.pad_out_h());
  const int out_w = p.has_upsample_w() ? static_cast<int>(p.upsample_w())
      : bottom[0]->width() * scale_w - static_cast<int>(p.pad_out_w());
  CHECK_GT(out_h, 0) << "Upsample " << name << ": output height must be > 0";
  CHECK_GT(out_w, 0) << "Upsample " << name << ": output width must be > 0";
  top[0]->Reshape(bottom[0]->num(), bottom[0]->channels(), out_h, out_w);
  writer_.resize(out_h * out_w);
}

template <typename Dtype>
int UpsampleLayer<Dtype>::TargetIndex(const Dtype* mask, int i) const {
  const int index = static_cast<int>(mask[i]);
  CHECK(index >= 0 && index < static_cast<int>(writer_.size()))
      << "Upsample " << this->layer_param_.name() << ": mask index " << mask[i]
      << " lies outside the " << writer_.size() << "-pixel output plane";
  return index;
}

template <typename Dtype>
void UpsampleLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int planes = bottom[0]->num() * bottom[0]->channels();
  const int in_size = bottom[0]->height() * bottom[0]->width();
  const int out_size = top[0]->height() * top[0]->width();
  const Dtype* values = bottom[0]->cpu_data();
  const Dtype* mask = bottom[1]->cpu_data();
  Dtype* out = top[0]->mutable_cpu_data();
  caffe_set(top[0]->count(), Dtype(0), out);
  for (int p = 0; p < planes; ++p) {
    const Dtype* v = values + p * in_size;
    const Dtype* m = mask + p * in_size;
    Dtype* o = out + p * out_size;
    for (int i = 0; i < in_size; ++i) {
      o[TargetIndex(m, i)] = v[i];
    }
  }
}

template <typename Dtype>
void UpsampleLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  // The mask is piecewise constant in everything upstream: its gradient is zero.
  if (propagate_down[1]) {
    caffe_set(bottom[1]->count(), Dtype(0), bottom[1]->mutable_cpu_diff());
  }
  if (!propagate_down[0]) { return; }
  const int planes = bottom[0]->num() * bottom[0]->channels();
  const int in_size = bottom[0]->height() * bottom[0]->width();
  const int out_size = top[0]->height() * top[0]->width();
  const Dtype* top_diff = top[0]->cpu_diff();
  const Dtype* mask = bottom[1]->cpu_data();
  Dtype* bottom_diff = bottom[0]->mutable_cpu_diff();
  for (int p = 0; p < planes; ++p) {
    const Dtype* m = mask + p * in_size;
    const Dtype* g = top_diff + p * out_size;
    Dtype* d = bottom_diff + p * in_size;
    // Replay the forward writes: only the last writer of an output owns its gradient.
    for (int i = 0; i < in_size; ++i) {
      writer_[TargetIndex(m, i)] = i;
    }
    for (int i = 0; i < in_size; ++i) {
      const int index = TargetIndex(m, i);
      d[i] = writer_[index] == i ? g[index] : Dtype(0);
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(UpsampleLayer);
#endif

INSTANTIATE_CLASS(UpsampleLayer);
REGISTER_LAYER_CLASS(Upsample);

}  // namespace caffe
