#ifndef CAFFE_INTERP_LAYER_HPP_
#define CAFFE_INTERP_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/syncedmem.hpp"

namespace caffe {

/**
 * @brief Bilinear resizing of each channel with aligned corners: the first and last
 *        output pixels sample exactly the first and last input pixels, as the
 *        Interp layer of PSPNet / DeepLab that the POP authors' fork and ICNet use.
 *
 * The output size comes from interp_param, in this order of precedence:
 *   - shrink_factor s only:           out = (in_eff - 1) / s + 1
 *   - zoom_factor z only:             out = in_eff + (in_eff - 1) * (z - 1)
 *   - height and width:               out = (height, width)
 *   - shrink_factor then zoom_factor: both rules above, shrink first.
 * where in_eff = in + pad_beg + pad_end.  Negative pads crop the input before resizing;
 * positive pads surround it with zeros.  The backward pass distributes each output
 * gradient to the (up to four) input pixels it was interpolated from.
 *
 * The GPU kernels (interp_layer.cu) read the very taps Reshape computes for the CPU pass,
 * copied to the device, so both modes sample alike.
 */
template <typename Dtype>
class InterpLayer : public Layer<Dtype> {
 public:
  explicit InterpLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "Interp"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

  /// The two input samples one output coordinate is interpolated from, along one axis.
  /// A sample outside the real input (zero padding) has weight 0 and a safe index.
  /// (Public: the CUDA kernels take arrays of it.)
  struct Tap {
    int lo, hi;
    Dtype w_lo, w_hi;
  };

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  /// Taps for each of `out` output positions over an axis of `in` real samples
  /// seen through pad_beg/pad_end.
  static void ComputeTaps(int in, int pad_beg, int pad_end, int out,
      vector<Tap>* taps);

  int pad_beg_, pad_end_;
  vector<Tap> taps_h_, taps_w_;
  /// The same taps for the GPU kernels (filled on the host in Reshape, copied on first use).
  shared_ptr<SyncedMemory> taps_h_mem_, taps_w_mem_;
};

}  // namespace caffe

#endif  // CAFFE_INTERP_LAYER_HPP_
