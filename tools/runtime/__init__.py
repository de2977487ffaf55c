"""What this machine runs on.

- :mod:`tools.runtime.caffe`: the Caffe dfseg runs on (our ``make caffe`` build, ``$CAFFE_ROOT``
  or an importable pycaffe), its ``caffe`` binary, pycaffe itself, and the device the Caffe
  engines use; the one place that imports pycaffe, with one error (:class:`CaffeNotFound`).

The command line is ``python -m tools.caffe_locate``.
"""
__all__ = ["caffe"]
