"""Reports: the paper's and the release's tables from logs and measured results.

- :mod:`tools.report.paper`: the one reader of the paper's figures (``paper_tables.yaml``) and
  its views (Titan X figures, the head to head, the GPU kit's, the model names logs may use);
- :mod:`tools.report.timings`: the one timing-result schema every bench writes, its reader and
  the models view `make tables` reads;
- :mod:`tools.report.log_figures`: which log gives which figure (the release's naming) and
  reading a directory of logs;
- :mod:`tools.report.measured`: the measured-results files of the benches;
- :mod:`tools.report.comparison`: Tables 1, 3, 4, 5 and Fig. 1 measured here (``bench/paper.json``);
- :mod:`tools.report.paper_plan`: what ``make bench-paper`` times (tables, models, sizes), the
  paper's names in the registry, and the rule that keeps a net that does not fit out of an engine;
- :mod:`tools.report.fig1`: Fig. 1 redrawn from ``fig1_points.yaml`` (the published points, each
  with its source) and the measured FPS;
- :mod:`tools.report.build`: the tables as rows of cells, paper | logs | measured here;
- :mod:`tools.report.render`: the Fig. 1-style plot, Markdown and HTML;
- :mod:`tools.report.head_to_head`, :mod:`tools.report.latency`: the benches' own Markdown
  tables and plots.

The command line is ``python -m tools.tables``; the log parsers are :mod:`tools.report.log_parsers`.
"""
__all__ = ["build", "comparison", "fig1", "head_to_head", "latency", "log_figures", "measured", "paper",
           "paper_plan", "render", "timings"]
