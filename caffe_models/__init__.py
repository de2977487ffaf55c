"""dfseg's named models as data, no code: ``*.yaml`` (the DF backbones and DF-Seg nets) and
``zoo/*.yaml`` (the paper's comparison nets).  :mod:`prototxt_gen.models` reads them through
``importlib.resources``, so they are package data and an installed dfseg has them too.
(``make <model>`` writes generated prototxts into ``caffe_models/<model>/`` of a checkout;
those folders are outputs, not part of the package.)"""
