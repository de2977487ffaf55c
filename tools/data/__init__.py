"""Data sets and their evaluation.

- :mod:`tools.data.cityscapes_labels`: the Cityscapes labels, ids and train ids;
- :mod:`tools.data.cityscapes_scores`: the confusion matrix and IoU / nIoU (the evaluation core);
- :mod:`tools.data.cityscapes_report`: the report in the official layout, and its parser;
- :mod:`tools.data.cityscapes_files`: a directory of prediction PNGs against the ground truth.

The command line is ``python -m tools.cityscapes_eval``.
"""
__all__ = ["cityscapes_files", "cityscapes_labels", "cityscapes_report", "cityscapes_scores"]
