"""How much memory this machine has free, and how much of it a net may take.

One rule for every place that keeps a net out of an engine before it runs (the engines' own
check in ``tools.engines.nets`` and the plan of ``make bench-paper``): a net whose estimate
exceeds ``MEMORY_SHARE`` of the memory available now is refused, since the kernel's OOM killer
would otherwise end the engine, or another process, with SIGKILL.
"""
from __future__ import annotations

__all__ = ["MEMORY_SHARE", "available_bytes", "fits"]

MEMORY_SHARE = 0.8   # leave a fifth of the available memory to everything else


def available_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes; None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fits(need: int | None, have: int | None) -> bool:
    """False only when both are known and `need` exceeds MEMORY_SHARE of `have`."""
    return not (need and have and need > MEMORY_SHARE * have)
