"""Data sets: LMDB databases, the Cityscapes layout, and the Cityscapes evaluation.

- :mod:`tools.data.lmdb_store`: LMDB databases of encoded Caffe ``Datum`` records, written
  atomically, read with every record checked (``DataError``);
- :mod:`tools.data.cityscapes_labels`: the one Cityscapes label table (ids, train ids,
  categories, instance flags) and the id <-> train id look-up tables;
- :mod:`tools.data.cityscapes_dataset`: Cityscapes on disk -> training lists or LMDB pairs, and
  a generated data set in the same layout;
- :mod:`tools.data.cityscapes_scores`: the confusion matrix and IoU / nIoU (the evaluation core);
- :mod:`tools.data.cityscapes_report`: the report in the official layout (its parser is
  :mod:`tools.report.cityscapes_log`);
- :mod:`tools.data.cityscapes_files`: a directory of prediction PNGs against the ground truth.

The command lines are ``python -m tools.lmdb_tools``, ``python -m tools.cityscapes_data`` and
``python -m tools.cityscapes_eval``.
"""
__all__ = ["cityscapes_dataset", "cityscapes_files", "cityscapes_labels", "cityscapes_report", "cityscapes_scores",
           "lmdb_store"]
