"""The machine a measurement runs on: what to record beside every figure (CPU, cores, load,
thread settings) and whether other processes are using the CPU right now."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["busy_cpu_report", "cpu_model", "describe_machine", "thread_env", "BUSY_CORE_FRACTION"]

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
