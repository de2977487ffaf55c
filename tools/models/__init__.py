"""The models dfseg benchmarks, as the benches, the GPU checks and the tables name them.

- :mod:`tools.models.registry`: the one registry: every named model of ``caffe_models/``
  (DF backbones, DF-Seg), the paper's comparison nets of ``caffe_models/zoo/`` and ICNet (from
  the reference prototxts); their paper names, the size each runs at, the net an engine times;
  and where the reference material lies (``$DFSEG_REFERENCE``).
"""
__all__ = ["registry"]
