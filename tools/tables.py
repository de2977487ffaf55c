"""Rebuild the paper's and the release README's tables from logs, beside the published
figures and the numbers measured on this machine.

    python -m tools.tables --logs DIR [--json] [--out DIR] [--paper YAML] [--bench DIR]

* ``--json`` prints the release tables rebuilt from the logs, exactly
  ``{"segmentation": [{"model", "miou_val", "fps_1080ti_1024x2048", "fps_1080ti_1024x1024",
  "fps_titanx_caffe"}], "backbones": [{"model", "top1"}]}`` (mIoU and top-1 in percent,
  FPS = 1000 / ms, rounded as the paper prints them; null where no log gives the figure).
* ``--out DIR`` writes ``tables.md``, ``tables.html`` (self-contained, plot embedded),
  ``tables.json`` and ``fig1_miou_vs_fps.png``.  Without ``--json``/``--out`` the Markdown
  goes to stdout.

Which log gives which figure is decided by its file name (the release's naming; see
`LOG_NAMING` and docs/tables.md).  Measured figures are read from JSON result files (see
`MEASURED_ENGINES` and `load_measured`); a missing file shows as "—".
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from prototxt_gen.models import load_model, model_names
from dfseg.base.atomic import atomic_write_group
from dfseg.base.cli import CliError
from dfseg.base.textfile import TextFileError, read_yaml
from tools.report.comparison import ComparisonFormatError, comparison_tables, load_paper_bench, plot_fig5
from tools.report.build import (DASH, Table, build_tables, fps, measured_comparison_tables,
                                release_tables)
from tools.report.log_figures import LOG_NAMING, Figure, LogFigures, model_key, read_logs
from tools.report.measured import MEASURED_ENGINES, MeasuredFormatError, load_measured
from tools.report.render import plot_fig1, to_html, to_markdown

# The tables are built in tools.report; this module is their command line and keeps the
# names callers import from here.
__all__ = ["DASH", "LOG_NAMING", "MEASURED_ENGINES", "REPO", "Figure", "LogFigures",
           "MeasuredFormatError", "Table", "build_tables", "default_paper_tables", "fps",
           "known_model_names", "load_measured", "main", "measured_comparison_tables",
           "model_key", "plot_fig1", "read_logs", "release_tables", "to_html", "to_markdown"]

REPO = Path(__file__).resolve().parent.parent


def default_paper_tables() -> Path:
    root = Path(os.environ.get("DFSEG_REFERENCE", REPO.parent / "shared" / "reference"))
    return root / "paper_tables.yaml"


def known_model_names(paper: dict | None) -> list[str]:
    """Model names logs may name: the paper's, plus the generator's named models."""
    names = []
    for key in ("release_segmentation", "release_backbones", "table3_1080ti", "table4_titanx", "table5_tx2",
                "table1_tx2_backbones"):
        names += [r["model"] for r in (paper or {}).get(key, [])]
    names += [load_model(n).display_name for n in model_names()]
    return list(dict.fromkeys(names))


def _fail(message: str) -> int:
    print(f"tables: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.tables", description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=Path, required=True, help="directory of logs in the release's naming")
    ap.add_argument("--json", action="store_true", help="print the rebuilt release tables as JSON")
    ap.add_argument("--out", type=Path, help="write tables.md, tables.html, tables.json, fig1_miou_vs_fps.png here")
    ap.add_argument("--paper", type=Path, default=None,
                    help="paper_tables.yaml (default: $DFSEG_REFERENCE or ../shared/reference)")
    ap.add_argument("--bench", type=Path, default=REPO / "bench",
                    help="directory of measured results (%s)" % ", ".join(f for *_, f in MEASURED_ENGINES))
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _load_paper(paper_path: Path, asked: bool) -> dict | None:
    """The paper's tables, or None (with a warning) when the default file is absent."""
    if paper_path.is_file():
        try:
            return read_yaml(paper_path, "paper tables (YAML)")
        except TextFileError as exc:
            raise CliError(str(exc)) from None
    if asked:
        raise CliError(f"{paper_path}: paper tables not found")
    print(f"tables: warning: {paper_path} not found; no paper columns", file=sys.stderr)
    return None


def _load_all_measured(bench: Path) -> dict:
    try:
        return {name: load_measured(bench / filename) for name, _, filename in MEASURED_ENGINES}
    except MeasuredFormatError as exc:
        raise CliError(str(exc)) from None


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
        atomic_write_group({args.out / "fig1_miou_vs_fps.png": png,
                            args.out / "fig5_top1_vs_latency.png": plot_fig5(comparison["table1"]),
                            args.out / "tables.md": markdown,
                            args.out / "tables.html": to_html(tables, figs, sources, png),
                            args.out / "tables.json": json.dumps(release, indent=2) + "\n"})
        if not args.json:
            print(f"wrote {args.out}/tables.md, tables.html, tables.json, fig1_miou_vs_fps.png, "
                  f"fig5_top1_vs_latency.png")
    elif not args.json:
        sys.stdout.write(markdown)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.logs.is_dir():
            raise CliError(f"{args.logs}: log directory not found")
        paper_path = args.paper or default_paper_tables()
        paper = _load_paper(paper_path, bool(args.paper))
        figs = read_logs(args.logs, known_model_names(paper), progress=not args.quiet)
        measured = _load_all_measured(args.bench)
        release = release_tables(figs, paper)
        try:
            comparison = comparison_tables(paper, load_paper_bench(args.bench / "paper.json"))
        except ComparisonFormatError as exc:
            raise CliError(str(exc)) from None
    except CliError as exc:
        return _fail(str(exc))
    release.update(comparison)
    if args.json:
        print(json.dumps(release, indent=2))
    if args.out or not args.json:
        _write_outputs(args, figs, paper, paper_path, measured, release, comparison)
    for name, why in figs.skipped:
        print(f"tables: note: {name}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
