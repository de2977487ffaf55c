"""Floor 4: training through pycaffe, the real POP evaluator and the demos.

- recipes and nets: :mod:`solvers.solver_gen` (solver prototxts from YAML recipes),
  :mod:`solvers.net_data` (generated nets with our data layers);
- data: :mod:`solvers.data_sources` (LMDB and list readers), :mod:`solvers.augment` (random
  scaling and stretching), :mod:`solvers.data_layers` (the pycaffe Python layers),
  :mod:`solvers.digits` (the offline digits data set);
- training: :mod:`solvers.runner` (snapshots, resume, divergence stop),
  :mod:`solvers.snapshots`, :mod:`solvers.train_logs`, :mod:`solvers.evaluate` (top-1/top-5),
  :mod:`solvers.caffe_env` (pycaffe, imported on first use only);
- POP: :mod:`solvers.pop_evaluator` (a candidate trained for a budget), :mod:`solvers.pop_demo`;
- :mod:`solvers.seg_smoke` (DF-Seg on a Cityscapes-shaped data set, end to end).
"""
__all__ = ["augment", "caffe_env", "data_layers", "data_sources", "digits", "evaluate", "net_data", "pop_demo",
           "pop_evaluator", "runner", "seg_smoke", "snapshots", "solver_gen", "train_logs"]
