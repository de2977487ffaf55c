"""Caffe nets as data and their conversions:

- :mod:`tools.export.netparam`: reading and writing prototxts (one-line errors), the data-layer
  hand-over to an Input, pycaffe loading of a message;
- :mod:`tools.export.caffe_net`: a net as Caffe's TEST phase sees it (which layers run, every
  blob's and parameter's shape, from prototxt_gen.shapes);
- :mod:`tools.export.caffemodel`: weight files (read, write, fit to a net, random weights);
- :mod:`tools.export.reference_nets`: ICNet's and other reference nets at a size they accept;
- ONNX: `onnx_graph` the graph under construction, `onnx_ops` / `onnx_ops_pointwise` one function
  per Caffe layer type, `onnx_convert` the whole net, `onnx_check` the comparison with pycaffe.

The command lines are `tools.to_onnx` and `tools.merge_bn`.
"""
__all__ = ["caffe_net", "caffemodel", "netparam", "reference_nets", "onnx_graph", "onnx_ops",
           "onnx_ops_pointwise", "onnx_convert", "onnx_check"]
