"""The 8-worker run of the distributed benchmark: ``pop worker`` processes kept at their number
while the faults of :class:`~pop.bench_faults.FaultPlan` are injected.

The loop ticks every ``tick`` seconds: it reads the shared trace (progress), notes which
workers ended, restarts the ones that stopped (after ``restart_delay``) or were killed (at
once), and injects the next fault when it is due.  It ends when a worker has finished the
search (exit 0: Algorithm 1 stopped) and all others have ended, or after ``timeout``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench_faults import Fault, FaultPlan, LineTail, SmallFs


def event_pid(event: dict) -> int:
    """The process id in a trace event's worker id (HOST:PID:RANDOM, pop.study.worker_id)."""
    try:
        return int(str(event.get("worker", "")).rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return -1


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen
    log: LineTail
    started: float
    ended: float | None = None
    killed: bool = False          # by the benchmark (SIGKILL)

    @property
    def pid(self) -> int:
        return self.proc.pid


class WorkerPool:
    """``command`` (a ``pop worker`` line) started as many times as asked, output to a log each."""

    def __init__(self, command: list[str], log_dir: Path):
        self.command, self.log_dir = command, Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: list[Worker] = []

    def start(self, now: float) -> Worker:
        path = self.log_dir / f"worker-{len(self.workers):03d}.log"
        with open(path, "wb") as out:   # the worker's own output, written as it goes
            proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        worker = Worker(len(self.workers), proc, LineTail(path), now)
        self.workers.append(worker)
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.ended is None]

    def kill(self, worker: Worker) -> None:
        worker.killed = True
        os.kill(worker.pid, signal.SIGKILL)

    def poll(self, now: float) -> list[Worker]:
        """Workers that ended since the last poll (their logs read up to now)."""
        ended = []
        for w in self.workers:
            w.log.read(now)
            if w.ended is None and w.proc.poll() is not None:
                w.ended = now
                w.log.read(now)
                ended.append(w)
        return ended

    def stop_all(self) -> None:
        for w in self.alive():
            self.kill(w)
            w.proc.wait()


@dataclass
class RunLog:
    """What the loop saw: faults as injected, workers that stopped by themselves, the trace."""

    started: float
    ended: float = 0.0
    finished: bool = False
    faults: list[Fault] = field(default_factory=list)
    stops: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class FaultyRun:
    """One search of `n` workers under `plan`; see the module docstring."""

    def __init__(self, pool: WorkerPool, plan: FaultPlan, server, fs: SmallFs | None, trace: Path,
                 expected: int, n: int = 8, tick: float = 0.2, restart_delay: float = 1.0,
                 timeout: float = 3600.0, log=print, clock=time.time):
        self.pool, self.plan, self.server, self.fs = pool, plan, server, fs
        self.trace, self.expected, self.n = LineTail(trace), expected, n
        self.tick, self.restart_delay, self.timeout, self.log, self.clock = tick, restart_delay, timeout, log, clock
        self.gaps, self.victims = plan.kill_gaps(), plan.victims()
        self.record = RunLog(clock())
        self.done = 0
        self.training_pids: set[int] = set()
        self.restart_at: list[float] = []
        self.next_kill = self.record.started + next(self.gaps)
        self.outage: Fault | None = None
        self.disk: Fault | None = None

    def run(self) -> RunLog:
        for _ in range(self.n):
            self.pool.start(self.clock())
        try:
            while not self._step(self.clock()):
                time.sleep(self.tick)
        finally:
            self.pool.stop_all()
            self._end_outage(self.clock(), final=True)
            self._end_disk(self.clock(), final=True)
        self.record.ended = self.clock()
        self._read_trace()
        return self.record

    def _read_trace(self) -> None:
        for line in self.trace.read(self.clock()):
            try:
                event = json.loads(line)
            except ValueError:
                continue   # cannot happen with O_APPEND lines; counted as nothing
            self.record.events.append(event)
            self.done += event.get("event") == "done"
            self.training_pids.add(event_pid(event))

    def _step(self, now: float) -> bool:
        """One tick; True when the run is over."""
        self._read_trace()
        for w in self.pool.poll(now):
            self._ended(w, now)
        if self.record.finished:
            return not self.pool.alive()
        if now - self.record.started > self.timeout:
            self.log(f"bench: the search did not finish within {self.timeout:.0f} s; stopping it")
            return True
        self._faults(now)
        self._top_up(now)
        return False

    def _ended(self, w: Worker, now: float) -> None:
        code = w.proc.returncode
        if code == 0:
            self.record.finished = True   # Algorithm 1 stopped: no more kills, no restarts
        elif not w.killed:
            last = [line for _, line in w.log.lines if line.strip()][-1:] or [""]
            self.record.stops.append({"worker": w.index, "at_s": round(now - self.record.started, 2),
                                      "returncode": code, "line": last[0]})
            self.restart_at.append(now + self.restart_delay)

    def _top_up(self, now: float) -> None:
        waiting = sorted(t for t in self.restart_at if t > now)
        self.restart_at = waiting
        while len(self.pool.alive()) + len(waiting) < self.n:
            self.pool.start(now)

    def _faults(self, now: float) -> None:
        if now >= self.next_kill and self._kill(now):
            self.next_kill = now + next(self.gaps)
        if self.outage is None and self.plan.due("postgres_restart", self.done, self.expected):
            self._start_outage(now)
        if self.outage is not None:
            self._end_outage(now)
        if self.disk is None and self.plan.due("disk_full", self.done, self.expected):
            self._start_disk(now)
        if self.disk is not None:
            self._end_disk(now)

    def _kill(self, now: float) -> bool:
        # a worker that has started training: one still starting up (imports, replaying the
        # study) holds no lease, and killing it tests nothing; when none trains yet, the kill
        # waits for the next tick (on a starved CPU, replacements could otherwise never start)
        working = [w for w in self.pool.alive() if not w.killed and w.pid in self.training_pids]
        if not working or len(working) < self.plan.keep_training * self.n:
            return False
        victim = self.victims.choice(working)
        self.pool.kill(victim)
        fault = Fault("sigkill", now - self.record.started, workers_affected=[victim.index],
                      detail={"pid": victim.pid, "waited_s": round(now - self.next_kill, 2)})
        self.record.faults.append(fault)
        fault.detail["replacement"] = self.pool.start(now).index
        return True

    def _start_outage(self, now: float) -> None:
        self.outage = Fault("postgres_restart", now - self.record.started,
                            workers_affected=[w.index for w in self.pool.alive()],
                            detail={"how": "pg_ctl stop -m fast, then pg_ctl start", "done_before": self.done})
        self.record.faults.append(self.outage)
        self.log(f"bench: stopping PostgreSQL for {self.plan.outage_seconds:.0f} s at {self.done} trainings")
        self.server.stop("fast")
        self.outage.detail["stopped_at"] = self.clock()

    def _end_outage(self, now: float, final: bool = False) -> None:
        f = self.outage
        if f is None or "restarted_at" in f.detail:
            return
        if final or now - f.detail["stopped_at"] >= self.plan.outage_seconds:
            self.server.start()
            f.detail["restarted_at"] = self.clock()
            f.duration_s = f.detail["restarted_at"] - f.detail["stopped_at"]
            self.log(f"bench: PostgreSQL back after {f.duration_s:.1f} s")

    def _start_disk(self, now: float) -> None:
        self.disk = Fault("disk_full", now - self.record.started, detail={"done_before": self.done})
        self.record.faults.append(self.disk)
        if self.fs is None or not self.fs.mounted:
            self.disk.detail["not_injected"] = "no small file system could be mounted here (see protocol)"
            self.disk.detail["freed_at"] = now
            return
        self.log(f"bench: filling the work directory's file system for {self.plan.disk_seconds:.0f} s")
        self.disk.detail.update(self.fs.fill())
        self.disk.detail["filled_at"] = self.clock()
        self.disk.workers_affected = [w.index for w in self.pool.alive()]

    def _end_disk(self, now: float, final: bool = False) -> None:
        f = self.disk
        if f is None or "freed_at" in f.detail:
            return
        if final or now - f.detail["filled_at"] >= self.plan.disk_seconds:
            self.fs.free()
            f.detail["freed_at"] = self.clock()
            f.duration_s = f.detail["freed_at"] - f.detail["filled_at"]
