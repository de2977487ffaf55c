"""The paper's comparison tables and Fig. 1 measured here (`make bench-paper`): Table 1
(backbones at 224x224, batch 1), Table 3 (1024x2048; BiSeNet at the paper's 768x1536), Table 4
(640x360, 1280x720, 1920x1080, WxH as the paper writes them), Table 5 (480x320, 640x360,
1280x720) and every net of Fig. 1 at the size of its published FPS, on Caffe (`caffe time`),
OpenCV DNN and ONNX Runtime, through the engine layer and its protocol (the nets of one size
timed in interleaved rounds on each engine).  A net at a size is timed once and its time given
to every table that has it.

    python -m tools.paper_bench [--iterations 2] [--table4-iterations 1] [--rounds 2]
                                [--threads 1] [--engines caffe-time,opencv,onnxruntime]
                                [--models a,b] [--no-table1] [--no-table3] [--no-table4]
                                [--no-table5] [--no-fig1] [--max-net-seconds 300] [--plan]
                                [--out bench/paper.json]

Which nets, which sizes, and the ceiling rule (a net whose memory or estimated time would not
fit this machine is not run on that engine; its row says so with the figures) are
tools.report.paper_plan's; `--plan` prints them with the time estimate and runs nothing.

Writes OUT after every size (an interrupted run keeps what it measured):
    {"machine", "engines": {engine: describe()}, "threads", "protocol": {...}, "max_net_seconds",
     "table1" | "table3" | "table4" | "table5" | "fig1": [{"model" (paper name), "name",
        ["paper_size" (WxH, Tables 4 and 5)], "input_hw", "run_hw",
        "measured": {"caffe": timing, "opencv": timing, "onnxruntime": timing},
        "errors": {engine: why}}]}
Each timing is a timing record (tools.report.timings: median_ms, min_ms, ci95_ms, samples,
protocol, engine, machine).  An engine that cannot run a model (a layer it lacks, its memory,
the ceiling, a model not built yet) leaves its timing null and says why.
`make tables` puts these beside the paper's figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw
from tools.engines import Protocol, describe_machine, make_engine
from tools.engines.head_to_head import REPORTED, table_rows
from tools.models.registry import display_name
from tools.report.fig1 import fig1_points
from tools.report.paper_plan import TABLES, Ceiling, Cost, Entry, is_built, net_cost, not_built_reason, plan

ENGINES = ("caffe-time", "opencv", "onnxruntime")
#: engines that check their own memory need before they load a net (Caffe: every blob and
#: each convolution's im2col buffer, tools.engines.nets.check_memory)
OWN_MEMORY_CHECK = {"caffe-time"}


def _passes(engine: str, p: Protocol) -> int:
    """Forward passes one net makes on `engine` under protocol `p` (`caffe time` warms up
    once per call, one call per round)."""
    return p.rounds * (1 + p.repeats) if engine == "caffe-time" else p.warmup + p.rounds * p.repeats


def _groups(entries: list[Entry], costs: dict) -> list[tuple[tuple[int, int], bool, list[str]]]:
    """(size, Table 1's protocol?, the built nets at it), cheapest size first: the engines'
    rates (the ceiling rule) are learned on small nets before the large ones are judged."""
    by_hw: dict[tuple, list[str]] = {}
    for e in entries:
        names = by_hw.setdefault((e.hw, e.table == "table1"), [])
        if is_built(e.name) and e.name not in names:
            names.append(e.name)
    groups = [(hw, t1, names) for (hw, t1), names in by_hw.items() if names]
    return sorted(groups, key=lambda g: max(costs[(n, g[0])].macs or 0 for n in g[2]))


def _empty_row(name: str, hw, engines: list[str], why: str) -> dict:
    model = display_name(name) if is_built(name) else name
    return {"model": model, "name": name, "input_hw": list(hw), "run_hw": None,
            "measured": {REPORTED[e]: None for e in engines}, "errors": {REPORTED[e]: why for e in engines}}


def _measure(hw, names: list[str], protocol: Protocol, engines: list[str], args, ceiling: Ceiling,
             costs: dict, nets_dir: Path) -> dict:
    """{name: row} of one size: per engine, the nets the ceiling rule lets run, interleaved."""
    rows = {n: _empty_row(n, hw, [], "") for n in names}
    for engine in engines:
        key, allowed = REPORTED[engine], []
        for n in names:
            why = ceiling.refusal(engine, costs[(n, hw)], _passes(engine, protocol), hw,
                                  engine in OWN_MEMORY_CHECK)
            if why:
                rows[n]["measured"][key], rows[n]["errors"][key] = None, why
            else:
                allowed.append(n)
        for r in table_rows(allowed, hw, [engine], protocol, args.threads, nets_dir, {}) if allowed else []:
            row = rows[r["name"]]
            row["model"], row["run_hw"] = r["model"], r["run_hw"]
            row["measured"].update(r["measured"])
            row["errors"].update(r["errors"])
            record = r["measured"].get(key)
            ceiling.learn(engine, costs[(r["name"], hw)].macs, record and record["median_ms"])
    return rows


def _table_rows(entries: list[Entry], cells: dict) -> dict:
    """{table: rows} of the entries measured (or refused) so far."""
    out: dict = {}
    for e in entries:
        cell = cells.get((e.name, e.hw))
        if cell is not None:
            extra = {"paper_size": e.paper_size} if e.paper_size else {}
            out.setdefault(e.table, []).append({**cell, **extra, "input_hw": list(e.hw)})
    return out


def _protocols(args) -> tuple[Protocol, Protocol]:
    return tuple(Protocol.splitting(passes, args.rounds, warmup=1)
                 for passes in (args.iterations, args.table4_iterations))


def _checked_args(args) -> list[str]:
    engines = [e for e in args.engines.split(",") if e]
    if args.out.is_dir():
        raise CliError(f"{args.out}: is a directory (give the JSON file to write)")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise CliError(f"--engines: {unknown or 'none'} (choose from {', '.join(ENGINES)})")
    if min(args.iterations, args.table4_iterations, args.rounds, args.threads) < 1:
        raise CliError("--iterations, --table4-iterations, --rounds and --threads must be >= 1")
    if args.max_net_seconds <= 0:
        raise CliError("--max-net-seconds must be > 0")
    return engines


def _entries(args) -> list[Entry]:
    tables = {t for t in TABLES if not getattr(args, f"no_{t}")}
    everything = plan(set(TABLES), None, fig1_points())
    wanted = set(args.models.split(",")) if args.models else None
    unknown = (wanted or set()) - {e.name for e in everything}
    if unknown:
        raise CliError(f"--models: {sorted(unknown)} are in none of the tables "
                       f"({', '.join(sorted({e.name for e in everything}))})")
    return plan(tables, wanted, fig1_points())


def _run(args) -> int:
    engines = _checked_args(args)
    entries = _entries(args)
    costs = {(e.name, e.hw): net_cost(e.name, e.hw) if is_built(e.name) else Cost(why="not built")
             for e in entries}
    t1, seg = _protocols(args)
    ceiling = Ceiling(args.max_net_seconds)
    groups = _groups(entries, costs)
    if args.plan:
        print_plan(groups, costs, engines, ceiling, t1, seg)
        return 0
    cells = {(e.name, e.hw): _empty_row(e.name, e.hw, engines, not_built_reason(e.name))
             for e in entries if not is_built(e.name)}
    report = {"machine": describe_machine(), "threads": args.threads, "max_net_seconds": args.max_net_seconds,
              "engines": {REPORTED[e]: make_engine(e, threads=args.threads).describe() for e in engines},
              "protocol": {"table1": asdict(t1), "segmentation": asdict(seg), "interleaved": True,
                           "statistic": "median of passes (caffe: of its per-run averages)"}}
    nets_dir = args.out.parent / "paper_nets"
    nets_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for hw, is_t1, names in tqdm(groups, desc="paper tables", unit="size", file=sys.stderr):
        for name, row in _measure(hw, names, t1 if is_t1 else seg, engines, args, ceiling, costs, nets_dir).items():
            cells[(name, hw)] = row
        report.update({t: [] for t in TABLES}, **_table_rows(entries, cells),
                      wall_s=round(time.monotonic() - started, 1))
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    if not groups:   # only nets not built yet: their rows say so
        report.update({t: [] for t in TABLES}, **_table_rows(entries, cells))
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print_summary(report)
    return 0


def print_plan(groups, costs: dict, engines: list[str], ceiling: Ceiling, t1: Protocol, seg: Protocol) -> None:
    """Each size's nets with their GMACs and, per engine, the estimated seconds (at the assumed
    rate: nothing is timed) or why the net will not run; then the total."""
    total = 0.0
    for hw, is_t1, names in groups:
        protocol = t1 if is_t1 else seg
        print(f"{format_hxw(hw)} ({'Table 1' if is_t1 else 'segmentation'} protocol: "
              f"{protocol.rounds} round(s) x {protocol.repeats} pass(es))")
        for n in names:
            cost, cells, whys = costs[(n, hw)], [], []
            for e in engines:
                passes = _passes(e, protocol)
                why = ceiling.refusal(e, cost, passes, hw, e in OWN_MEMORY_CHECK)
                est = ceiling.estimate_s(e, cost, passes) or 0.0
                total += 0.0 if why else est
                cells.append(f"{REPORTED[e]} {'skip' if why else f'~{est:.0f}s'}")
                whys += [f"      {REPORTED[e]}: {why}"] if why else []
            gmac = "?" if cost.macs is None else f"{cost.macs / 1e9:.1f}"
            print(f"  {n:<12} {gmac:>8} GMAC  " + "  ".join(cells) + "".join("\n" + w for w in whys))
    print(f"estimated: about {total / 60:.0f} min of passes at the assumed rate, plus loading the nets")


def _ms(timing) -> str:
    return "–" if timing is None else f"{timing['median_ms']:.1f}"


def print_summary(report: dict) -> None:
    keys = list(report["engines"])
    for table in TABLES:
        for r in report.get(table, []):
            size = f"{r['paper_size']} (paper's WxH)" if r.get("paper_size") else format_hxw(r["input_hw"])
            cells = "  ".join(f"{k} {_ms(r['measured'].get(k))}" for k in keys)
            print(f"{table}  {r['model']:<24} {size:>22}  {cells} ms"
                  + (f"  ({'; '.join(f'{k}: {v[:70]}' for k, v in r['errors'].items())})" if r["errors"] else ""))
    if "wall_s" in report:
        print(f"took {report['wall_s'] / 60:.1f} min")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=2, help="passes per net for Table 1 (the paper's 100: `make bench`)")
    p.add_argument("--table4-iterations", type=int, default=1,
                   help="passes per net for the segmentation nets (Tables 3, 4, 5, Fig. 1)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds the passes are split into")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--models", default=None, help="comma-separated subset of the tables' models (default: all)")
    for table in TABLES:
        p.add_argument(f"--no-{table}", dest=f"no_{table}", action="store_true",
                       help=f"leave out {table}")
    p.add_argument("--max-net-seconds", type=float, default=300.0,
                   help="ceiling per net, size and engine (all its passes, estimated from its MACs): "
                        "a net over it is not run and its row says so (default 300)")
    p.add_argument("--plan", action="store_true", help="print the nets, sizes and time estimate; run nothing")
    p.add_argument("--out", type=Path, default=Path("bench/paper.json"))
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.paper_bench"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
