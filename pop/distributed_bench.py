"""``make bench-distributed``: the distributed search under load and faults (issue 23, item 3).

On a real PostgreSQL server started here on loopback (:mod:`pop.pg_local`), with a role that
must give its password, in a URL that carries it (``postgresql://dfseg:SECRET@127.0.0.1:PORT/pop``):

1. two studies created by ``pop search --create-only`` with the same flags: Ŝ of the paper's
   widths at depths ≤ 4/4/4 (32,072 architectures, FLOPs-proxy latencies), a patience that
   never stops the search before Ŝ is exhausted (about 2,200 trainings), the surrogate
   evaluator with ``delay`` seconds per training;
2. the one-worker run: one ``pop worker`` on the first study (the reference result and rate);
3. the 8-worker run on the second, under the faults of :class:`pop.bench_faults.FaultPlan`
   (:class:`pop.bench_monitor.FaultyRun`), its ``--workdir`` on a small tmpfs;
4. the accounting (:mod:`pop.bench_accounting`): exactly once, the same result as the one
   worker, what each fault cost, no traceback, and the password in no output.

Everything the runs write goes under ``work`` (logs, traces, work dirs); the server lives in a
temporary folder, removed at the end.
"""
from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .bench_accounting import account, fault_costs, fault_summary, grep_secret, read_trace, same_search
from .bench_faults import FaultPlan, MountError, SmallFs
from .bench_monitor import FaultyRun, WorkerPool
from .lut import FlopsProxy, table_from_model
from .pg_local import start_local
from .space import Space, SpaceConfig

ROLE, DATABASE = "dfseg", "pop"


@dataclass
class BenchConfig:
    workers: int = 8
    delay: float = 0.03                 # seconds per training (surrogate): 20-50 ms asked for
    max_depth: tuple[int, int, int] = (4, 4, 4)
    input_size: tuple[int, int] = (128, 128)
    seed: int = 0
    patience: int = 1_000_000           # K: never reached; the search ends when Ŝ is exhausted
    lease_timeout: float = 5.0
    poll: float = 0.2
    min_trainings: int = 2000
    timeout: float = 3600.0
    clean_run: bool = False             # also 8 workers without faults: the rate the faults cut into
    plan: FaultPlan = field(default_factory=FaultPlan)

    def space_flags(self) -> list[str]:
        h, w = self.input_size
        return ["--max-depth", ",".join(map(str, self.max_depth)), "--input-size", f"{h}x{w}",
                "--latency", "0,1000000"]

    def space_config(self) -> SpaceConfig:
        """What ``space_flags`` make of pop's default stages (pop.commands._space_config)."""
        return SpaceConfig.from_dict({"stages": [{"max_depth": d} for d in self.max_depth],
                                      "input_size": list(self.input_size), "latency_ms": [0.0, 1_000_000.0]})


@dataclass
class Setup:
    """The server, the URL with its password, and the files both runs share."""

    server: object
    url: str
    password: str
    work: Path
    lut: Path
    outputs: dict[str, str] = field(default_factory=dict)   # command outputs kept for the grep


def _pop(args: list, setup: Setup, name: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pop", *map(str, args)], capture_output=True, text=True)
    setup.outputs[name] = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"pop {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done


def _create(setup: Setup, cfg: BenchConfig, study: str) -> None:
    _pop(["search", *cfg.space_flags(), "--lut", setup.lut, "--allow-foreign-lut", "--seed", cfg.seed,
          "-K", cfg.patience, "--evaluator", f"surrogate:seed=3,delay={cfg.delay}",
          "--lease-timeout", cfg.lease_timeout, "--storage", setup.url, "--study", study, "--create-only"],
         setup, f"pop search {study}")


def _worker_command(setup: Setup, cfg: BenchConfig, study: str, trace: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "pop", "worker", "--storage", setup.url, "--study", study, "--quiet",
            "--trace", str(trace), "--workdir", str(workdir), "--poll", str(cfg.poll)]


def _rate(events: list[dict], trainings: int) -> tuple[float, float]:
    """Trainings per second over the span from the first start to the last done."""
    starts = [e["time"] for e in events if e.get("event") == "start"]
    dones = [e["time"] for e in events if e.get("event") == "done"]
    span = max(dones) - min(starts) if starts and dones else float("nan")
    return span, trainings / span if span > 0 else float("nan")


def plain_run(setup: Setup, cfg: BenchConfig, study: str, n: int, log=print) -> dict:
    """`n` workers on `study` and no fault: the one-worker reference (result and rate), or
    the 8-worker rate without faults (``--clean-run``)."""
    run = setup.work / study
    run.mkdir(parents=True)
    trace = run / "trace.jsonl"
    log(f"bench: {n} worker{'s' if n > 1 else ''}, no fault ({study})")
    pool = WorkerPool(_worker_command(setup, cfg, study, trace, run / "runs"), run / "logs")
    t = time.time()
    workers = [pool.start(t) for _ in range(n)]
    codes = [w.proc.wait() for w in workers]
    pool.poll(time.time())
    if any(codes):
        raise RuntimeError(f"the {study} run failed (exits {codes}): {workers[0].log.lines[-1:]}")
    acc, replay = account(setup.url, study, read_trace(trace), run / "runs")
    span, rate = _rate(read_trace(trace), acc.trainings)
    return {"accounting": acc, "replay": replay, "wall_s": time.time() - t, "span_s": span, "rate": rate,
            "pool": pool}


def eight_workers(setup: Setup, cfg: BenchConfig, expected: int, log=print) -> dict:
    """The faulty run; its work dir on a small tmpfs when one can be mounted."""
    run = setup.work / "eight"
    run.mkdir(parents=True)
    trace, workdir = run / "trace.jsonl", run / "runs"
    fs = SmallFs(workdir, size_mb=16, inodes=4 * expected + 4096)
    try:
        fs.mount()
        mount = f"tmpfs, {fs.size_mb} MiB, {fs.inodes} inodes"
    except (MountError, OSError) as e:
        fs, mount = None, f"not mounted ({e}): the disk-full fault is not injected"
    log(f"bench: {cfg.workers} workers with faults; work dir {workdir} on {mount}")
    pool = WorkerPool(_worker_command(setup, cfg, "eight", trace, workdir), run / "logs")
    faulty = FaultyRun(pool, cfg.plan, setup.server, fs, trace, expected, n=cfg.workers, timeout=cfg.timeout, log=log)
    try:
        record = faulty.run()
        acc, replay = account(setup.url, "eight", read_trace(trace), workdir)
        if fs is not None:   # what the trainings left, kept for the password grep
            shutil.copytree(workdir, run / "runs-copy", dirs_exist_ok=True)
    finally:
        if fs is not None:
            fs.unmount()
    fault_costs(record, pool.workers, cfg.lease_timeout)
    span, rate = _rate(record.events, acc.trainings)
    return {"accounting": acc, "replay": replay, "record": record, "pool": pool, "span_s": span, "rate": rate,
            "wall_s": record.ended - record.started, "workdir_fs": mount}


def start(cfg: BenchConfig, work: Path, log=print) -> tuple[Setup, Path]:
    """A fresh `work` folder, the server (in a temporary folder), the role, the LUT."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="dfseg-pg-"))
    tmp.chmod(0o755)   # the server runs as the postgres user
    log("bench: starting PostgreSQL on loopback")
    password, server = secrets.token_urlsafe(12), None
    try:
        server = start_local(tmp / "server", log=log)
        host = server.add_role(ROLE, password, DATABASE)
    except BaseException:
        if server is not None:
            server.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lut = work / "lut.json"
    table_from_model(cfg.space_config(), FlopsProxy()).save(lut)
    return Setup(server, f"postgresql://{ROLE}:{password}@{host}/{DATABASE}", password, work, lut), tmp


def machine(server) -> dict:
    version = subprocess.run([str(server.bindir / "postgres"), "--version"], capture_output=True, text=True)
    return {"cpus": os.cpu_count(), "load_average_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform(),
            "postgresql": version.stdout.strip()}


def run_bench(cfg: BenchConfig, work: Path, log=print) -> tuple[dict, Setup]:
    """Both runs and the accounting; returns (the summary, the setup for the password grep)."""
    setup, tmp = start(cfg, work, log)
    try:
        where = machine(setup.server)
        for study in ("one", "eight") + (("clean",) if cfg.clean_run else ()):
            _create(setup, cfg, study)
        one = plain_run(setup, cfg, "one", 1, log)
        clean = plain_run(setup, cfg, "clean", cfg.workers, log) if cfg.clean_run else None
        eight = eight_workers(setup, cfg, one["accounting"].trainings, log)
        where["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        setup.server.close()
        server_log = setup.server.log.read_bytes()
    finally:
        setup.server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    setup.outputs["server log"] = server_log.decode("utf-8", "replace")
    summary = summarize(cfg, one, eight, where)
    if clean is not None:
        summary["no_faults"] = {**_run_json(clean), **same_search(one["replay"], clean["replay"]),
                                "throughput_vs_one_worker": round(clean["rate"] / one["rate"], 3)}
    return summary, setup


def _checks(cfg: BenchConfig, one: dict, eight: dict) -> dict:
    logs = [line for r in (one, eight) for w in r["pool"].workers for _, line in w.log.lines]
    stops = eight["record"].stops
    return {**same_search(one["replay"], eight["replay"]), "finished": eight["accounting"].finished,
            "tracebacks": sum("Traceback" in line for line in logs),
            "internal_errors": sum("internal error" in line for line in logs),
            "stops_with_one_error_line": all(
                sum(" error: " in line for _, line in eight["pool"].workers[s["worker"]].log.lines) == 1
                for s in stops),
            "outage_workers_reconnected_or_stopped": all(not f.detail.get("silent") for f in eight["record"].faults
                                                         if f.kind == "postgres_restart"),
            "scale_met": eight["accounting"].trainings >= cfg.min_trainings}


def _run_json(run: dict) -> dict:
    return {**run["accounting"].to_json(), "wall_s": round(run["wall_s"], 1), "span_s": round(run["span_s"], 1),
            "trainings_per_s": round(run["rate"], 2), "workers_started": len(run["pool"].workers)}


def summarize(cfg: BenchConfig, one: dict, eight: dict, where: dict) -> dict:
    acc = eight["accounting"]
    checks = _checks(cfg, one, eight)
    faults = eight["record"].faults
    size = Space.enumerate(cfg.space_config(), table_from_model(cfg.space_config(), FlopsProxy())).size
    return {
        "trainings": acc.trainings, "lost": acc.lost, "duplicated": acc.duplicated,
        "boundary_equal": checks["boundary_equal"],
        "throughput_vs_one_worker": round(eight["rate"] / one["rate"], 3),
        "faults": [f.to_json() for f in faults],
        "fault_summary": fault_summary(faults),
        "checks": checks,
        "one_worker": _run_json(one),
        "eight_workers": {**_run_json(eight), "used_per_s": round(acc.used / eight["span_s"], 2),
                          "stops": eight["record"].stops},
        "protocol": {**{k: v for k, v in asdict(cfg).items() if k != "plan"}, "plan": asdict(cfg.plan),
                     "space_size": size, "evaluator": f"surrogate:seed=3,delay={cfg.delay}",
                     "storage": f"PostgreSQL on 127.0.0.1, role {ROLE} with a password (scram-sha-256) in the URL",
                     "workdir_fs": eight["workdir_fs"],
                     "throughput": "COMPLETE trials / (last done - first start) of each run's trace"},
        "machine": where,
    }


def password_check(summary_text: str, setup: Setup, printed: list[str]) -> dict:
    """grep for the password in every output: the files under the work folder (logs, traces,
    the work dirs), the commands' output, the server log, what the bench printed, the JSON."""
    texts = {**setup.outputs, "bench output": "\n".join(printed), "bench/distributed.json": summary_text}
    return {"url": "postgresql://dfseg:***@127.0.0.1:PORT/pop",
            **grep_secret(setup.password, [setup.work], texts)}
