"""The machine a measurement runs on: what to record beside every figure (CPU, cores, load,
thread settings) and whether other processes are using the CPU right now."""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["busy_cpu_report", "busy_neighbour", "cpu_model", "describe_machine", "thread_env",
           "BUSY_CORE_FRACTION"]

BUSY_CORE_FRACTION = 0.2   # warn when other processes use more than this share of one core
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins BLAS/OpenMP libraries to `threads` (read when they load)."""
    return {var: str(threads) for var in THREAD_VARIABLES}


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (e.g. "Intel(R) Xeon(R) ..."), falling back
    to what `platform` knows (processor, then machine architecture) where that file is absent."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_machine() -> dict:
    return {"cpu": cpu_model(), "machine": platform.machine(), "logical_cpus": os.cpu_count(),
            "platform": platform.platform(), "load_average_1min": round(os.getloadavg()[0], 2)}


def _process_ticks() -> dict[int, tuple[str, int]]:
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))   # utime + stime
    return ticks


def busy_cpu_report(sample_s: float = 0.5, top: int = 5) -> str | None:
    """A sentence describing CPU load from other processes (the `top` busiest named), or None
    when the CPU is quiet."""
    cores = os.cpu_count() or 1
    before = _process_ticks()
    time.sleep(sample_s)
    after = _process_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    mine = {os.getpid(), os.getppid()}
    users = []
    for pid, (name, t1) in after.items():
        if pid in mine or pid not in before:
            continue
        share = (t1 - before[pid][1]) / hz / sample_s
        if share >= 0.05:
            users.append((share, name, pid))
    users.sort(reverse=True)
    busy = sum(share for share, _, _ in users)
    load1 = os.getloadavg()[0]
    if busy < BUSY_CORE_FRACTION and load1 < 0.5 * cores:
        return None
    top = ", ".join(f"{name} (pid {pid}, {share:.0%})" for share, name, pid in users[:top])
    return (f"CPU busy: load average {load1:.2f} on {cores} cores; other processes use "
            f"{busy:.2f} cores" + (f": {top}" if top else "") + " — timings will be skewed")


#: The neighbour's work: sweep a 16 MB array (half this machine's last-level cache or more,
#: so it competes for cache and memory bandwidth as another job does, not only for a core)
#: until told to stop or `limit` seconds have passed; it says "busy" once it runs.
_NEIGHBOUR = """
import sys, time
import numpy as np
limit = float(sys.argv[1])
a = np.ones(2 * 1024 * 1024)
print("busy", flush=True)
end = time.monotonic() + limit
while time.monotonic() < end:
    a *= 1.0000001
"""


@contextlib.contextmanager
def busy_neighbour(limit_s: float = 1800.0):
    """A second process busy on another core for the duration of the block: what "the machine
    is not quiet" means in a check that must hold on a user's machine.  Where there are two
    CPUs or more, this process is pinned to one and the neighbour to another (restored after);
    the neighbour ends with the block, and by itself after `limit_s` whatever happens here."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    mine = set(cpus)
    proc = subprocess.Popen([sys.executable, "-c", _NEIGHBOUR, str(limit_s)],
                            stdout=subprocess.PIPE, text=True)
    try:
        if len(cpus) > 1:
            os.sched_setaffinity(proc.pid, {cpus[-1]})
            os.sched_setaffinity(0, set(cpus[:-1]))
        if proc.stdout.readline().strip() != "busy":
            raise RuntimeError("the busy neighbour process did not start")
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if len(cpus) > 1:
            os.sched_setaffinity(0, mine)
