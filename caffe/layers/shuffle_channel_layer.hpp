#ifndef CAFFE_SHUFFLE_CHANNEL_LAYER_HPP_
#define CAFFE_SHUFFLE_CHANNEL_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief ShuffleNet's channel shuffle: the C channels, seen as `group` rows of C / group,
 *        are read out column by column.  Input channel g * (C / group) + k becomes output
 *        channel k * group + g (reshape to (N, group, C / group, H, W), swap axes 1 and 2,
 *        flatten back).  Backward applies the inverse permutation to the gradient.
 *
 * Works in place (top == bottom) through an internal copy.
 */
template <typename Dtype>
class ShuffleChannelLayer : public Layer<Dtype> {
 public:
  explicit ShuffleChannelLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "ShuffleChannel"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
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

  /// dst channel k * group + g = src channel g * (C / group) + k, for every image.
  /// `inverse` maps the other way (the backward pass).
  void Permute(const Dtype* src, Dtype* dst, bool inverse) const;

  int num_, channels_, plane_, group_;
  Blob<Dtype> buffer_;  // the source while working in place
};

}  // namespace caffe

#endif  // CAFFE_SHUFFLE_CHANNEL_LAYER_HPP_
