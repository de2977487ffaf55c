"""Caffe nets and their weights for other engines (floor 2; reading, preparing and shaping a
net is prototxt_gen's, floor 1: `netio`, `netprep`, `shapes` with its layer catalogue):

- :mod:`tools.export.caffe_net`: a net as Caffe's TEST phase sees it (which layers run, every
  blob's and parameter's shape, from prototxt_gen.shapes);
- :mod:`tools.export.caffemodel`: weight files (read, write, fit to a net, random weights);
- :mod:`tools.export.merge_bn`: BatchNorm + Scale folded into the convolutions, net and weights;
- :mod:`tools.export.pycaffe_net`: a message loaded into pycaffe;
- :mod:`tools.export.reference_nets`: ICNet's and other reference nets at a size they accept;
- ONNX: `onnx_graph` the graph under construction, `onnx_ops` / `onnx_ops_pointwise` one function
  per Caffe layer type, `onnx_convert` the whole net, `onnx_check` the comparison with pycaffe;
- PyTorch: `torch_ops`, `torch_convert` (the generated module and its files), `torch_layers`
  (copied into the generated code), `torch_check`; `blob_check` is both checks' pycaffe side.

The command lines are `tools.to_onnx`, `tools.to_torch` and `tools.merge_bn`.
"""
__all__ = ["blob_check", "caffe_net", "caffemodel", "merge_bn", "pycaffe_net", "reference_nets",
           "onnx_graph", "onnx_ops", "onnx_ops_pointwise", "onnx_convert", "onnx_check",
           "torch_check", "torch_convert", "torch_layers", "torch_ops"]
