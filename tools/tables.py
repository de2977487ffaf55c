"""Rebuild the paper's and the release README's tables from logs, beside the published
figures and the numbers measured on this machine.

    python -m tools.tables --logs DIR [--json] [--out DIR] [--paper YAML] [--bench DIR]

* ``--json`` prints the release tables rebuilt from the logs, exactly
  ``{"segmentation": [{"model", "miou_val", "fps_1080ti_1024x2048", "fps_1080ti_1024x1024",
  "fps_titanx_caffe"}], "backbones": [{"model", "top1"}]}`` (mIoU and top-1 in percent,
  FPS = 1000 / ms, rounded as the paper prints them; null where no log gives the figure).
  It also holds the paper's comparison tables with the figures measured here by
  ``make bench-paper`` (``bench/paper.json``): ``table1``, ``table3``, ``table4``, ``table5``
  and ``fig1``, lists of rows ``{"model", ..., "paper": {...}, "measured": {engine: ms},
  "errors": {engine: why}}`` (tools.report.comparison; docs/tables.md).
* ``--out DIR`` writes ``tables.md``, ``tables.html`` (self-contained, plots embedded),
  ``tables.json``, ``fig1_miou_vs_fps.png`` (paper and logs), ``fig1.png`` (Fig. 1 redrawn:
  the published points and those measured here) and ``fig5_top1_vs_latency.png``.  Without
  ``--json``/``--out`` the Markdown goes to stdout.

Which log gives which figure is decided by its file name (the release's naming; see
tools.report.log_figures.LOG_NAMING and docs/tables.md).  Measured figures are read from JSON
result files in the one timing schema (tools.report.measured, tools.report.timings); a missing
file shows as "—".  The tables are built in tools.report; this module is their command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_group
from dfseg.base.cli import CliError, run_cli
from tools.report.build import build_tables, measured_comparison_tables, release_tables
from tools.report.comparison import ENGINES as COMPARISON_ENGINES, comparison_tables, load_paper_bench, plot_fig5
from tools.report.fig1 import fig1_points, plot_fig1_measured
from tools.report.log_figures import LogFigures, read_logs
from tools.report.measured import MEASURED_ENGINES, load_measured
from tools.report.paper import known_model_names, paper_tables_path, read_paper_tables
from tools.report.render import plot_fig1, to_html, to_markdown

REPO = Path(__file__).resolve().parent.parent


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=Path, required=True, help="directory of logs in the release's naming")
    ap.add_argument("--json", action="store_true", help="print the rebuilt release tables as JSON")
    ap.add_argument("--out", type=Path, help="write tables.md, tables.html, tables.json and the plots here")
    ap.add_argument("--paper", type=Path, default=None,
                    help="paper_tables.yaml (default: $DFSEG_REFERENCE or ../shared/reference)")
    ap.add_argument("--bench", type=Path, default=REPO / "bench",
                    help="directory of measured results (%s)" % ", ".join(f for *_, f in MEASURED_ENGINES))
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _load_paper(paper_path: Path, asked: bool) -> dict | None:
    """The paper's tables, or None (with a warning) when the default file is absent."""
    paper = read_paper_tables(paper_path)
    if paper is None and asked:
        raise CliError(f"{paper_path}: paper tables not found")
    if paper is None:
        print(f"tables: warning: {paper_path} not found; no paper columns", file=sys.stderr)
    return paper


def _write_outputs(args, figs: LogFigures, paper: dict | None, paper_path: Path, measured: dict,
                   release: dict, comparison: dict) -> None:
    """The Markdown to stdout, or with --out every file (tables, plots, JSON) as one group."""
    tables = build_tables(figs, paper, measured) + measured_comparison_tables(comparison)
    sources = {"logs": args.logs, "paper": paper_path if paper else "not found",
               **{label: (args.bench / f) if measured[n] is not None else f"{args.bench / f} (absent)"
                  for n, label, f in MEASURED_ENGINES}}
    markdown = to_markdown(tables, figs, sources)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        png = plot_fig1(figs, paper)
        fig1 = plot_fig1_measured(comparison["fig1"], list(COMPARISON_ENGINES))
        atomic_write_group({args.out / "fig1_miou_vs_fps.png": png,
                            args.out / "fig1.png": fig1,
                            args.out / "fig5_top1_vs_latency.png": plot_fig5(comparison["table1"]),
                            args.out / "tables.md": markdown,
                            args.out / "tables.html": to_html(tables, figs, sources, png,
                                                              [("Fig. 1 redrawn: published and measured here", fig1)]),
                            args.out / "tables.json": json.dumps(release, indent=2) + "\n"})
        if not args.json:
            print(f"wrote {args.out}/tables.md, tables.html, tables.json, fig1_miou_vs_fps.png, "
                  f"fig1.png, fig5_top1_vs_latency.png")
    elif not args.json:
        sys.stdout.write(markdown)


def _run(args) -> int:
    if not args.logs.is_dir():
        raise CliError(f"{args.logs}: log directory not found")
    paper_path = args.paper or paper_tables_path()
    paper = _load_paper(paper_path, bool(args.paper))
    figs = read_logs(args.logs, known_model_names(paper), progress=not args.quiet)
    measured = {name: load_measured(args.bench / filename) for name, _, filename in MEASURED_ENGINES}
    release = release_tables(figs, paper)
    comparison = comparison_tables(paper, load_paper_bench(args.bench / "paper.json"), fig1_points())
    release.update(comparison)
    if args.json:
        print(json.dumps(release, indent=2))
    if args.out or not args.json:
        _write_outputs(args, figs, paper, paper_path, measured, release, comparison)
    for name, why in figs.skipped:
        print(f"tables: note: {name}: {why}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.tables"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
