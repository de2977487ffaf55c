"""Head-to-head benchmark (`make bench`, `make df1seg`): DF-Seg nets (merged BN) and ICNet timed
through the engine layer -- the real `caffe time` binary, as the paper timed, with OpenCV's DNN
module and PyTorch (the tools.to_torch module, CPU) as second engines at full size -- each
beside the paper's Titan X figure.  The second engines' outputs are checked against pycaffe's.

    python -m tools.bench [--iterations 100] [--rounds 5] [--threads 1] [--table4-iterations 10]
                          [--opencv-iterations 5] [--torch-iterations 5] [--models df1seg,icnet,...]
                          [--no-table4] [--no-opencv] [--no-torch] [--out bench]

Protocol (docs/measurement.md): the nets of one size group are timed in interleaved rounds on
each engine (`--rounds`; each round runs every net `iterations / rounds` times, in alternating
order), so a change of load hits DF1-Seg and ICNet alike; every time is reported as median, min
and a bootstrap 95 % interval, and the DF1-Seg/ICNet FPS ratio with its interval over rounds.
Threads are pinned (`--threads`, default 1: with 2 BLAS threads on a shared 2-core machine the
speed-up, and so the ratio, moves with other processes' load).

Writes ``OUT/results.json`` (after every group, so nothing measured is lost; every time in it a
timing record, tools.report.timings), ``OUT/results.md`` and ``OUT/fps.png``.  The measuring is
tools.engines.head_to_head, the reports tools.report.head_to_head.  Sizes are HxW; Table 4's sizes are named as the paper names them (WxH:
640x360 ...) and run at the next multiple of 32 (384x640, 736x1280, 1088x1920), the sizes the
DF-Seg decoder accepts.  On a CPU these numbers are not the paper's GPU figures: the ratio
DF1-Seg/ICNet (paper: 30.7 / 30.3) is the comparable quantity.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw
from tools.engines import busy_cpu_report
from tools.engines.head_to_head import Settings, bench
from tools.models.registry import ICNET, segmentation_models
from tools.report.head_to_head import markdown, write_reports
from tools.report.paper import read_paper_tables, titanx_figures

REPO = Path(__file__).resolve().parent.parent
DFSEG_MODELS = tuple(segmentation_models())   # from the registry: every DF-Seg model


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=100, help="caffe time passes per net at full size (paper: 100)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the passes are split into")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes per net (engines timed by the protocol)")
    p.add_argument("--threads", type=int, default=1, help="BLAS / engine threads (default 1)")
    p.add_argument("--table4-iterations", type=int, default=10, help="passes per net at Table 4's sizes")
    p.add_argument("--opencv-iterations", type=int, default=5, help="OpenCV passes per net")
    p.add_argument("--torch-iterations", type=int, default=5, help="PyTorch (CPU) passes per net")
    p.add_argument("--models", default=",".join([*DFSEG_MODELS, ICNET]),
                   help="comma-separated (default: all DF-Seg models and icnet)")
    p.add_argument("--no-table4", action="store_true")
    p.add_argument("--no-opencv", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench")
    return p


def _checked(args) -> list[str]:
    models = [m for m in args.models.split(",") if m]
    known = [*DFSEG_MODELS, ICNET]
    unknown = [m for m in models if m not in known]
    if unknown:
        raise CliError(f"unknown models {unknown} (known: {', '.join(known)})")
    if min(args.iterations, args.table4_iterations, args.opencv_iterations, args.torch_iterations,
           args.rounds, args.threads) < 1:
        raise CliError("--iterations, --table4-iterations, --opencv-iterations, --torch-iterations, "
                       "--rounds and --threads must be >= 1")
    return models


def _run(args) -> int:
    models = _checked(args)
    nets_dir = args.out / "nets"
    nets_dir.mkdir(parents=True, exist_ok=True)
    report = busy_cpu_report()
    if report:
        print(f"bench: warning: {report}", file=sys.stderr)
    engines = {"caffe-time": None}   # engine -> passes per net (None: the size group's)
    if not args.no_opencv:
        engines["opencv"] = args.opencv_iterations
    if not args.no_torch:
        engines["torch"] = args.torch_iterations
    settings = Settings(args.iterations, args.table4_iterations, args.rounds, args.warmup, args.threads,
                        table4=not args.no_table4)
    runs, data = bench(models, engines, settings, nets_dir, titanx_figures(read_paper_tables()),
                       on_update=lambda data: write_reports(data, args.out))
    sys.stdout.write(markdown(data))
    failed = [r for r in runs if r.error]
    for r in failed:
        print(f"bench: {r.model} ({r.engine}, {format_hxw(r.input_hw)}): {r.error}", file=sys.stderr)
    return 1 if failed and len(failed) == len(runs) else 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.bench"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
