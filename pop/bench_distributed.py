"""``make bench-distributed``: the distributed search under load and faults, on a real PostgreSQL.

8 ``pop worker`` processes search one study (>= 2,000 trainings of the surrogate evaluator with
a small delay) while the benchmark SIGKILLs a random worker every few seconds and starts a new
one, stops the PostgreSQL server for 15 s and starts it again, and fills the workers' work-dir
file system for a few seconds.  Then: every candidate trained exactly once, the boundary equal
to a one-worker run with the same seed, no traceback, and the password of the storage URL in
no output.  Writes ``bench/distributed.json`` (``trainings``, ``lost``, ``duplicated``,
``boundary_equal``, ``throughput_vs_one_worker``, ``faults``, and the protocol, the machine and
every check); exits 1 when a check fails.  Installs and starts the server itself (root, apt).
The work is in ``pop.distributed_bench``; this module reads the options and writes the file.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli

from .bench_faults import FaultPlan

from .distributed_bench import BenchConfig, password_check, run_bench

PROG = "python -m pop.bench_distributed"


def _numbers(text: str, flag: str, n: int, kind=float) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise CliError(f"{flag} {text!r}: expected {n} comma-separated numbers")
    return values


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench/distributed.json"))
    p.add_argument("--work", type=Path, default=Path("build/bench-distributed"),
                   help="logs, traces and work dirs of both runs (emptied first)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--delay", type=float, default=0.03, help="seconds per training (surrogate)")
    p.add_argument("--max-depth", default="4,4,4",
                   help="the scale: Ŝ's depths per stage (4,4,4: 32,072 architectures, ~2,200 trainings)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling order and of the faults")
    p.add_argument("--kill-every", default="3,6", help="seconds between SIGKILLs: low,high (uniform)")
    p.add_argument("--outage-seconds", type=float, default=15.0, help="how long PostgreSQL stays stopped")
    p.add_argument("--disk-seconds", type=float, default=8.0, help="how long the work dir's disk stays full")
    p.add_argument("--lease-timeout", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=3600.0, help="give up the 8-worker run after this")
    p.add_argument("--clean-run", action="store_true",
                   help="also time the workers without faults (the rate the faults cut into)")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    return run_cli(lambda: _bench(args), prog=prog or PROG)


def _config(args) -> BenchConfig:
    if args.workers < 1 or args.delay < 0:
        raise CliError("--workers must be >= 1 and --delay >= 0")
    try:
        plan = FaultPlan(kill_every=_numbers(args.kill_every, "--kill-every", 2), outage_seconds=args.outage_seconds,
                         disk_seconds=args.disk_seconds, seed=args.seed)
    except ValueError as e:
        raise CliError(str(e)) from None
    return BenchConfig(workers=args.workers, delay=args.delay, seed=args.seed, lease_timeout=args.lease_timeout,
                       max_depth=_numbers(args.max_depth, "--max-depth", 3, int), timeout=args.timeout, plan=plan,
                       clean_run=args.clean_run)


def _bench(args) -> int:
    printed: list[str] = []

    def log(message: str) -> None:
        printed.append(message)
        print(message, flush=True)

    summary, setup = run_bench(_config(args), args.work, log)
    summary["password"] = password_check(json.dumps(summary), setup, printed)
    atomic_write_text(args.out, json.dumps(summary, indent=1) + "\n")
    if setup.password in args.out.read_text():   # the file as written, grepped as well
        summary["password"]["found_in"].append(str(args.out))
    _print(summary, args.out)
    failed = _failed(summary)
    if failed:
        print(f"{PROG}: FAILED: {', '.join(failed)}")
        return 1
    return 0


def _failed(s: dict) -> list[str]:
    c = s["checks"]
    bad = [name for name, ok in (("lost", s["lost"] == 0), ("duplicated", s["duplicated"] == 0),
                                 ("boundary_equal", s["boundary_equal"]), ("finished", c["finished"]),
                                 ("no traceback", c["tracebacks"] == 0), ("no internal error", c["internal_errors"] == 0),
                                 ("stops with one line", c["stops_with_one_error_line"]),
                                 ("every worker reconnected or stopped", c["outage_workers_reconnected_or_stopped"]),
                                 ("scale (>= 2,000 trainings)", c["scale_met"]),
                                 ("password in no output", not s["password"]["found_in"])) if not ok]
    return bad


def _print(s: dict, out: Path) -> None:
    one, eight = s["one_worker"], s["eight_workers"]
    print(f"one worker: {one['trainings']} trainings in {one['span_s']} s ({one['trainings_per_s']}/s)")
    print(f"{s['protocol']['workers']} workers under faults: {s['trainings']} trainings ({eight['used']} used) "
          f"in {eight['span_s']} s ({eight['trainings_per_s']}/s) = {s['throughput_vs_one_worker']}x one worker; "
          f"{eight['workers_started']} workers started")
    print(f"lost {s['lost']}, duplicated {s['duplicated']}, boundary equal {s['boundary_equal']}, "
          f"tracebacks {s['checks']['tracebacks']}")
    kills = s["fault_summary"]["sigkill"]
    print(f"  {kills['count']} SIGKILLs ({kills['in_flight']} mid-training): candidate trained again after "
          f"{kills['median_recovery_s']} s, replacement training after {kills['median_replacement_first_training_s']} s "
          "(medians)")
    for f in s["faults"]:
        if f["kind"] != "sigkill":
            print(f"  {f['kind']} at {f['at_s']} s: lasted {f['duration_s']} s, progress again {f['recovery_s']} s "
                  f"later; workers {f['workers_affected']}")
    if "no_faults" in s:
        c = s["no_faults"]
        print(f"without faults: {c['trainings']} trainings in {c['span_s']} s ({c['trainings_per_s']}/s) = "
              f"{c['throughput_vs_one_worker']}x one worker, boundary equal {c['boundary_equal']}")
    pw = s["password"]
    print(f"password: searched {pw['files_searched']} files and {pw['texts_searched']} outputs, "
          f"found in {pw['found_in'] or 'none'}")
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
