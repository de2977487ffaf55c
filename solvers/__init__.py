"""Floor 4: training through pycaffe, the real POP evaluator and the demos.

Libraries:

- recipes and nets: :mod:`solvers.solver_recipes` (solver prototxts from YAML recipes),
  :mod:`solvers.net_data` (generated nets with our data layers);
- data: :mod:`solvers.data_sources` (LMDB and list readers), :mod:`solvers.augment` (random
  scaling and stretching), :mod:`solvers.data_layers` (the pycaffe Python layers),
  :mod:`solvers.digits_data` (the offline digits data set);
- training: :mod:`solvers.training` (snapshots, resume, divergence stop),
  :mod:`solvers.snapshots`, :mod:`solvers.train_logs`, :mod:`solvers.topk_accuracy`
  (top-1/top-5); pycaffe comes from :mod:`tools.runtime.caffe` (imported on first use only);
- POP: :mod:`solvers.pop_evaluator` (a candidate trained for a budget),
  :mod:`solvers.pop_demo_setup` (the CPU demo's data, task and space), :mod:`solvers.order_check`
  (the partial-order check against the seed noise, Fig. 3b);
- :mod:`solvers.segmentation_smoke` (DF-Seg on a Cityscapes-shaped data set, end to end).

Commands (argument parsing and printing over the libraries; ``python -m solvers.X``):
``solver_gen``, ``runner``, ``evaluate``, ``digits``, ``pop_demo``, ``seg_smoke``.
"""
__all__ = ["augment", "data_layers", "data_sources", "digits_data", "net_data", "order_check", "pop_demo_setup",
           "pop_evaluator", "segmentation_smoke", "snapshots", "solver_recipes", "topk_accuracy", "train_logs",
           "training"]
