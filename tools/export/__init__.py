"""Exporters of Caffe nets to other formats: ONNX (`onnx_graph` the graph under construction,
`onnx_ops` / `onnx_ops_pointwise` one function per Caffe layer type, `onnx_convert` the
whole net, `onnx_check` the comparison with pycaffe). The command line is `tools.to_onnx`."""
