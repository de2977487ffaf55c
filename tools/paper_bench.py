"""The paper's comparison tables measured here (`make bench-paper`): every model of Table 1
(backbones at 224x224, batch 1) and of Table 4 (segmentation at the paper's 640x360, 1280x720
and 1920x1080, WxH as the paper writes them) on Caffe (`caffe time`), OpenCV DNN and ONNX
Runtime, through the engine layer and its protocol (the models of one table and size timed in
interleaved rounds on each engine).

    python -m tools.paper_bench [--iterations 2] [--table4-iterations 1] [--rounds 2]
                                [--threads 1] [--engines caffe-time,opencv,onnxruntime]
                                [--no-table1] [--no-table4] [--out bench/paper.json]

Writes OUT after every group (an interrupted run keeps what it measured):
    {"machine", "engines": {engine: describe()}, "protocol": {...},
     "table1": [{"model" (paper name), "name", "input_hw", "run_hw",
                 "measured": {"caffe": timing, "opencv": timing, "onnxruntime": timing},
                 "errors": {engine: why}}],
     "table4": [{"model", "name", "paper_size" (WxH, as the paper), "input_hw", "run_hw",
                 "measured": {...}, "errors": {...}}]}
Each timing is a timing record (tools.report.timings: median_ms, min_ms, ci95_ms, samples,
protocol, engine, machine).  An engine that cannot run a model (a layer it lacks) leaves its
timing null and says why.
`make tables` puts these beside the paper's figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw
from tools.engines import Protocol, describe_machine, make_engine
from tools.engines.head_to_head import REPORTED, table_rows
from tools.report.paper import TABLE4_SIZES

TABLE1_MODELS = ("shufflenet_v2", "resnet18", "shufflenet_v1", "googlenet", "mobilenet_v1",
                 "mobilenet_v2", "resnet50", "df1", "df2", "df2a")
TABLE1_HW = (224, 224)
TABLE4_MODELS = ("segnet", "enet", "df1seg", "df2seg1", "df2seg2", "df1seg_d8")
ENGINES = ("caffe-time", "opencv", "onnxruntime")


def _run(args) -> int:
    engines = [e for e in args.engines.split(",") if e]
    if args.out.is_dir():
        raise CliError(f"{args.out}: is a directory (give the JSON file to write)")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise CliError(f"--engines: {unknown or 'none'} (choose from {', '.join(ENGINES)})")
    if min(args.iterations, args.table4_iterations, args.rounds, args.threads) < 1:
        raise CliError("--iterations, --table4-iterations, --rounds and --threads must be >= 1")
    described = {REPORTED[e]: make_engine(e, threads=args.threads).describe() for e in engines}
    nets_dir = args.out.parent / "paper_nets"
    nets_dir.mkdir(parents=True, exist_ok=True)
    t1, t4 = (Protocol.splitting(passes, args.rounds, warmup=1)
              for passes in (args.iterations, args.table4_iterations))
    report = {"machine": describe_machine(), "engines": described, "threads": args.threads,
              "protocol": {"table1": asdict(t1), "table4": asdict(t4), "interleaved": True,
                           "statistic": "median of passes (caffe: of its per-run averages)"},
              "table1": [], "table4": []}
    wanted = set(args.models.split(",")) if args.models else set(TABLE1_MODELS + TABLE4_MODELS)
    unknown = wanted - set(TABLE1_MODELS + TABLE4_MODELS)
    if unknown:
        raise CliError(f"--models: {sorted(unknown)} are in neither table "
                       f"({', '.join(TABLE1_MODELS + TABLE4_MODELS)})")
    table1 = [m for m in TABLE1_MODELS if m in wanted]
    table4 = [m for m in TABLE4_MODELS if m in wanted]
    groups = ([("table1", table1, TABLE1_HW, t1, {})] if table1 and not args.no_table1 else []) + \
             ([("table4", table4, hw, t4, {"paper_size": name})
               for name, hw in TABLE4_SIZES.items()] if table4 and not args.no_table4 else [])
    for table, models, hw, protocol, extra in tqdm(groups, desc="paper tables", unit="group", file=sys.stderr):
        report[table] += table_rows(models, hw, engines, protocol, args.threads, nets_dir, extra)
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print_summary(report)
    return 0


def _ms(timing) -> str:
    return "–" if timing is None else f"{timing['median_ms']:.1f}"


def print_summary(report: dict) -> None:
    keys = list(report["engines"])
    for table in ("table1", "table4"):
        for r in report[table]:
            size = f"{r['paper_size']} (paper's WxH)" if r.get("paper_size") else format_hxw(r["input_hw"])
            cells = "  ".join(f"{k} {_ms(r['measured'].get(k))}" for k in keys)
            print(f"{table}  {r['model']:<14} {size:>22}  {cells} ms"
                  + (f"  ({'; '.join(f'{k}: {v[:60]}' for k, v in r['errors'].items())})" if r["errors"] else ""))


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=2, help="passes per net for Table 1 (the paper's 100: `make bench`)")
    p.add_argument("--table4-iterations", type=int, default=1, help="passes per net for Table 4")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds the passes are split into")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--models", default=None, help="comma-separated subset of the tables' models (default: all)")
    p.add_argument("--no-table1", action="store_true")
    p.add_argument("--no-table4", action="store_true")
    p.add_argument("--out", type=Path, default=Path("bench/paper.json"))
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.paper_bench"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
