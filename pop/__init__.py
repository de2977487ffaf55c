"""Floor 3: Partial Order Pruning (the paper's search), on arrays and on Optuna studies.

- the space Ŝ: :mod:`pop.space_config` (what Ŝ is, read from YAML), :mod:`pop.estimate`
  (Lat(x) = stem + Σ blocks + head), :mod:`pop.enumeration` (the pruned enumeration),
  :mod:`pop.space` (Ŝ as arrays); :mod:`pop.decoder` (the decoder search of Section 3.5);
- latency: :mod:`pop.lut` (the look-up table), :mod:`pop.backends` (what times its entries),
  :mod:`pop.validate` (whole nets against the estimate, Fig. 3a);
- the search: :mod:`pop.order` (the partial order), :mod:`pop.algorithm` (Algorithm 1),
  :mod:`pop.evaluators` (what "train x" means), :mod:`pop.noise` (order-violation noise);
- on a database: :mod:`pop.study` (workers), :mod:`pop.leases`, :mod:`pop.storage`,
  :mod:`pop.storage_url`;
- results: :mod:`pop.report` (``pop report``), :mod:`pop.bench` (``make bench-pop``).

The command line is ``pop`` (``python -m pop``).
"""
__all__ = ["algorithm", "backends", "bench", "decoder", "enumeration", "estimate", "evaluators", "leases", "lut",
           "noise", "order", "report", "space", "space_config", "storage", "storage_url", "study", "validate"]
