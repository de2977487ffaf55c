"""Train every architecture of a small space under two seeds: the table of real trainings that
``pop.bench`` replays (``make pop-table``; :mod:`solvers.real_table` says what the files are).

    python -m solvers.pop_table --task T --space S --lut L --out DIR --workdir W
                                [--seeds 0 1] [--workers 2] [--models N] [--iterations N]

``--models N`` trains only the first N models of the (shuffled) order, ``--iterations`` overrides
the task's (both for tests); the table keeps every model of the space, the rest with empty cells.
Resumable: run the same command again and it trains only what is missing.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.textfile import read_text
from pop.lut import LatencyTable
from pop.space import Space
from pop.space_config import SpaceConfig
from pop.trained_table import TrainedTable, percent, read_table_csv
from tools.engines.machine import describe_machine

from .pop_evaluator import ClassificationTask

from .real_table import TABLE_CSV, check_resumable, plan_order, plot_table, train_table, write_table


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, type=Path, help="task.yaml (python -m solvers.pop_demo prepare)")
    ap.add_argument("--space", required=True, type=Path, help="space.yaml")
    ap.add_argument("--lut", required=True, type=Path, help="the LUT measured here (pop lut build)")
    ap.add_argument("--out", required=True, type=Path, help="where table.csv/json/png go")
    ap.add_argument("--workdir", required=True, type=Path, help="the trainings' working directories")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--workers", type=int, default=2, help="trainings at once (one core each)")
    ap.add_argument("--models", type=int, default=None, help="train only the first N models of the order")
    ap.add_argument("--iterations", type=int, default=None, help="override the task's iterations")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m solvers.pop_table"
    args = _parser(prog).parse_args(argv)
    command = " ".join([prog, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    return run_cli(lambda: _run(args, command), prog=prog)


def _table_for(args, space: Space) -> TrainedTable:
    latency = {space.encoding(i): float(space.latency[i]) for i in range(space.size)}
    if not latency:
        raise CliError(f"{args.space}: no architecture in the latency window")
    table = TrainedTable(tuple(args.seeds), {e: latency[e] for e in plan_order(list(latency))})
    csv_path = args.out / TABLE_CSV
    if csv_path.is_file():
        old = read_table_csv(csv_path)
        if old.seeds != table.seeds:
            raise CliError(f"{csv_path}: made with seeds {list(old.seeds)}, not {args.seeds}")
        unknown = set(old.accuracy) - set(latency)
        if unknown:
            raise CliError(f"{csv_path}: {len(unknown)} models are not in {args.space} (e.g. {min(unknown)})")
        table.accuracy = {e: a for e, a in old.accuracy.items() if a}
    return table


def _run(args: argparse.Namespace, command: str) -> int:
    if args.workers < 1 or (args.models is not None and args.models < 1) or len(set(args.seeds)) < 2:
        raise CliError("--workers and --models must be >= 1, and --seeds needs two different seeds at least")
    task = ClassificationTask.load(args.task)
    if args.iterations:
        task = ClassificationTask.from_dict(dict(task.to_dict(), iterations=args.iterations))
    config = SpaceConfig.load(args.space)
    lut = LatencyTable.load(args.lut)
    space = Space.enumerate(config, lut)
    args.out.mkdir(parents=True, exist_ok=True)
    task_fields = {k: v for k, v in task.to_dict().items() if k not in ("train_db", "val_db", "seed", "timeout_s")}
    meta = {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "make_target": "make pop-table", "machine": describe_machine(), "trainer": "solvers.pop_evaluator.CaffeEvaluator",
            "threads_per_training": task.threads, "workers": args.workers, "task": task_fields,
            "seeds": list(args.seeds), "lut_platform": lut.platform, "space_size": space.size}
    check_resumable(args.out, meta)
    table = _table_for(args, space)
    atomic_write_text(args.out / "space.yaml", read_text(args.space, "space (YAML)"))
    started = time.time()
    ran = train_table(table, task, args.workdir, save=lambda t: write_table(args.out, t, meta),
                      workers=args.workers, progress=not args.quiet, models=args.models)
    meta["seconds_per_training_this_run"] = (time.time() - started) * args.workers / ran if ran else None
    stats = write_table(args.out, table, meta)
    png = plot_table(args.out, table, stats)
    print(f"{ran} trainings run; {stats['models']} of {space.size} models trained under every seed -> "
          f"{args.out / TABLE_CSV}, {png}")
    if stats["models"]:
        print(f"seed noise {stats['seed_noise_pct']:.2f} % (max {stats['seed_noise_max_pct']:.2f} %); inverted "
              f"comparable pairs {percent(stats['inverted_pairs_pct'])} (on the mean of the seeds "
              f"{percent(stats['inverted_pairs_of_mean']['inverted_pairs_pct'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
