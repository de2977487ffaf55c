"""Facts about the machine a measurement ran on, recorded next to latency numbers."""
from __future__ import annotations

import platform
from pathlib import Path


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
