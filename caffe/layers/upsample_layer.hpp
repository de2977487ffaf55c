#ifndef CAFFE_UPSAMPLE_LAYER_HPP_
#define CAFFE_UPSAMPLE_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Max-unpooling as SegNet and ENet use it: bottom[0] holds pooled values, bottom[1]
 *        the mask top of the MAX Pooling layer that produced them (for each pooled value,
 *        the index y * W + x of its maximum inside its input plane of size H x W).  Each
 *        value is written back at its mask index; every other output is zero.
 *
 * The output plane is upsample_h x upsample_w when those are given, else the input size
 * times scale_h / scale_w (each defaulting to scale), one less on an axis with
 * pad_out_h / pad_out_w (ENet's odd sizes).
 *
 * Overlapping pooling windows can put one index in the mask twice; the later value (in
 * plane order) is the one written, and the backward pass gives that value alone the
 * gradient at its index, so backward is the exact derivative of forward.  The GPU pass
 * (upsample_layer.cu) resolves repeated indices the same way.
 */
template <typename Dtype>
class UpsampleLayer : public Layer<Dtype> {
 public:
  explicit UpsampleLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "Upsample"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// The output index of mask entry `i` of a plane, checked to lie inside the output plane.
  int TargetIndex(const Dtype* mask, int i) const;

  /// Per output position of one plane: which input position wrote it last (-1: none).
  vector<int> writer_;

  /// GPU: the same "last writer" for every output of every plane (the highest input index
  /// that targets it, so parallel writes resolve as the serial CPU loop does), and the first
  /// out-of-range mask entry (+1; 0: none) for the host to report.
  void FindWritersGpu(const Blob<Dtype>& mask, int out_size);
  Blob<int> gpu_writer_, gpu_bad_index_;
};

}  // namespace caffe

#endif  // CAFFE_UPSAMPLE_LAYER_HPP_
