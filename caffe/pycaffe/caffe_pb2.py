"""pycaffe's `caffe.proto.caffe_pb2`, installed by dfseg's caffe/build.sh in place of the
module protoc generated.

A process may register the message types of a given `caffe.proto` only once.  dfseg compiles
the same patched schema as `prototxt_gen.caffe_pb2` (with the venv's protobuf), so pycaffe
reuses that module instead of registering a second copy: `caffe.proto.caffe_pb2` *is*
`prototxt_gen.caffe_pb2`, and messages pass freely between the two.  Outside dfseg's venv the
module protoc generated at build time (`caffe_pb2_protoc`) is used.
"""
import sys

try:
    from prototxt_gen import caffe_pb2 as _schema
except ImportError:
    from . import caffe_pb2_protoc as _schema

sys.modules[__name__] = _schema
