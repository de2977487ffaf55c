#include <cstring>
#include <vector>

#include "caffe/layers/interp_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

int ShrunkSize(int in_eff, int shrink_factor) {
  CHECK_GE(shrink_factor, 1) << "Interp: shrink_factor must be >= 1";
  return (in_eff - 1) / shrink_factor + 1;
}

int ZoomedSize(int in_eff, int zoom_factor) {
  CHECK_GE(zoom_factor, 1) << "Interp: zoom_factor must be >= 1";
  return in_eff + (in_eff - 1) * (zoom_factor - 1);
}

#ifndef CPU_ONLY
/// A host copy of `taps` that SyncedMemory moves to the GPU when a kernel first asks.
template <typename Tap>
void ToSyncedMemory(const vector<Tap>& taps, shared_ptr<SyncedMemory>* mem) {
  mem->reset(new SyncedMemory(taps.size() * sizeof(Tap)));
  std::memcpy((*mem)->mutable_cpu_data(), taps.data(), taps.size() * sizeof(Tap));
}
#endif

}  // namespace

template <typename Dtype>
void InterpLayer<Dtype>::ComputeTaps(int in, int pad_beg, int pad_end, int out,
    vector<Tap>* taps) {
  const int in_eff = in + pad_beg + pad_end;
  // Aligned corners: output 0 sits on effective input 0, output out-1 on in_eff-1.
  const double scale = out > 1 ? static_cast<double>(in_eff - 1) / (out - 1) : 0.0;
  taps->resize(out);
  for (int o = 0; o < out; ++o) {
    const double pos = scale * o;
    int e_lo = static_cast<int>(pos);
    if (e_lo > in_eff - 1) e_lo = in_eff - 1;
    const int e_hi = e_lo < in_eff - 1 ? e_lo + 1 : e_lo;
    const double frac = pos - e_lo;
    // Effective index e reads real sample e - pad_beg; outside [0, in) it is padding.
    const int s_lo = e_lo - pad_beg, s_hi = e_hi - pad_beg;
    const bool lo_ok = s_lo >= 0 && s_lo < in, hi_ok = s_hi >= 0 && s_hi < in;
    Tap& t = (*taps)[o];
    t.lo = lo_ok ? s_lo : 0;
    t.hi = hi_ok ? s_hi : 0;
    t.w_lo = lo_ok ? static_cast<Dtype>(1.0 - frac) : Dtype(0);
    t.w_hi = hi_ok ? static_cast<Dtype>(frac) : Dtype(0);
  }
}

template <typename Dtype>
void InterpLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  CHECK_EQ(bottom[0]->num_axes(), 4) << "Interp: bottom must be N x C x H x W";
  const InterpParameter& p = this->layer_param_.interp_param();
  pad_beg_ = p.pad_beg();
  pad_end_ = p.pad_end();
  const int in_h = bottom[0]->height(), in_w = bottom[0]->width();
  const int eff_h = in_h + pad_beg_ + pad_end_, eff_w = in_w + pad_beg_ + pad_end_;
  CHECK_GT(eff_h, 0) << "Interp " << this->layer_param_.name()
      << ": pad_beg/pad_end leave no input rows";
  CHECK_GT(eff_w, 0) << "Interp " << this->layer_param_.name()
      << ": pad_beg/pad_end leave no input columns";
  int out_h, out_w;
  if (p.has_shrink_factor() && !p.has_zoom_factor()) {
    out_h = ShrunkSize(eff_h, p.shrink_factor());
    out_w = ShrunkSize(eff_w, p.shrink_factor());
  } else if (p.has_zoom_factor() && !p.has_shrink_factor()) {
    out_h = ZoomedSize(eff_h, p.zoom_factor());
    out_w = ZoomedSize(eff_w, p.zoom_factor());
  } else if (p.has_height() && p.has_width()) {
    out_h = p.height();
    out_w = p.width();
  } else if (p.has_shrink_factor() && p.has_zoom_factor()) {
    out_h = ZoomedSize(ShrunkSize(eff_h, p.shrink_factor()), p.zoom_factor());
    out_w = ZoomedSize(ShrunkSize(eff_w, p.shrink_factor()), p.zoom_factor());
  } else {
    LOG(FATAL) << "Interp " << this->layer_param_.name() << ": interp_param needs "
        "height and width, shrink_factor, zoom_factor, or shrink_factor and zoom_factor";
  }
  CHECK_GT(out_h, 0) << "Interp " << this->layer_param_.name() << ": height must be > 0";
  CHECK_GT(out_w, 0) << "Interp " << this->layer_param_.name() << ": width must be > 0";
  ComputeTaps(in_h, pad_beg_, pad_end_, out_h, &taps_h_);
  ComputeTaps(in_w, pad_beg_, pad_end_, out_w, &taps_w_);
#ifndef CPU_ONLY
  ToSyncedMemory(taps_h_, &taps_h_mem_);
  ToSyncedMemory(taps_w_, &taps_w_mem_);
#endif
  top[0]->Reshape(bottom[0]->num(), bottom[0]->channels(), out_h, out_w);
}

template <typename Dtype>
void InterpLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int planes = bottom[0]->num() * bottom[0]->channels();
  const int in_h = bottom[0]->height(), in_w = bottom[0]->width();
  const int out_h = top[0]->height(), out_w = top[0]->width();
  const Dtype* in = bottom[0]->cpu_data();
  Dtype* out = top[0]->mutable_cpu_data();
  for (int p = 0; p < planes; ++p) {
    const Dtype* src = in + p * in_h * in_w;
    Dtype* dst = out + p * out_h * out_w;
    for (int y = 0; y < out_h; ++y) {
      const Tap& ty = taps_h_[y];
      const Dtype* row_lo = src + ty.lo * in_w;
      const Dtype* row_hi = src + ty.hi * in_w;
      for (int x = 0; x < out_w; ++x) {
        const Tap& tx = taps_w_[x];
        dst[y * out_w + x] =
            ty.w_lo * (tx.w_lo * row_lo[tx.lo] + tx.w_hi * row_lo[tx.hi]) +
            ty.w_hi * (tx.w_lo * row_hi[tx.lo] + tx.w_hi * row_hi[tx.hi]);
      }
    }
  }
}

template <typename Dtype>
void InterpLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) { return; }
  const int planes = bottom[0]->num() * bottom[0]->channels();
  const int in_h = bottom[0]->height(), in_w = bottom[0]->width();
  const int out_h = top[0]->height(), out_w = top[0]->width();
  const Dtype* top_diff = top[0]->cpu_diff();
  Dtype* bottom_diff = bottom[0]->mutable_cpu_diff();
  caffe_set(bottom[0]->count(), Dtype(0), bottom_diff);
  for (int p = 0; p < planes; ++p) {
    const Dtype* g = top_diff + p * out_h * out_w;
    Dtype* d = bottom_diff + p * in_h * in_w;
    for (int y = 0; y < out_h; ++y) {
      const Tap& ty = taps_h_[y];
      Dtype* row_lo = d + ty.lo * in_w;
      Dtype* row_hi = d + ty.hi * in_w;
      for (int x = 0; x < out_w; ++x) {
        const Tap& tx = taps_w_[x];
        const Dtype gy_lo = ty.w_lo * g[y * out_w + x];
        const Dtype gy_hi = ty.w_hi * g[y * out_w + x];
        // Padding taps carry weight 0, so adding into their placeholder index is harmless.
        row_lo[tx.lo] += tx.w_lo * gy_lo;
        row_lo[tx.hi] += tx.w_hi * gy_lo;
        row_hi[tx.lo] += tx.w_lo * gy_hi;
        row_hi[tx.hi] += tx.w_hi * gy_hi;
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(InterpLayer);
#endif

INSTANTIATE_CLASS(InterpLayer);
REGISTER_LAYER_CLASS(Interp);

}  // namespace caffe
