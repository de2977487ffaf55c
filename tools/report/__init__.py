"""Reports: the paper's and the release's tables from logs and measured results.

- :mod:`tools.report.log_figures`: which log gives which figure (the release's naming) and
  reading a directory of logs;
- :mod:`tools.report.measured`: the measured-results files of the benches;
- :mod:`tools.report.build`: the tables as rows of cells, paper | logs | measured here;
- :mod:`tools.report.render`: the Fig. 1-style plot, Markdown and HTML.

The command line is ``python -m tools.tables``; the log parsers are :mod:`tools.report.log_parsers`.
"""
__all__ = ["build", "log_figures", "measured", "render"]
