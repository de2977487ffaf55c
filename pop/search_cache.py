"""Finished robustness searches kept on disk, so that an interrupted ``make bench-pop`` loses
nothing it computed (its robustness part is about an hour on 2 cores, most of it TPE).

One small JSON file per search (level, seed, method), written to a temp file beside it and
renamed, under a folder named by a fingerprint of everything a search's result depends on:
Ŝ (latencies and block counts), the reference latency, the ask cap, the stall rule, the Optuna
and NumPy versions and the source of the modules that run a search.  A rerun with the same Ŝ
(``python -m pop.bench --reuse-lut``) takes every finished search from there and runs only the
rest; any change to those inputs starts a new folder, so a stale result is never reused.  A file
that cannot be read (a crash mid-rename cannot leave one, a full disk or a hand edit can) is
run again.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import optuna

from dfseg.base.atomic import atomic_write_text

from .search_loop import STALL_ASKS, STALL_NEW

# the modules whose code decides a search's result (pop.robustness draws the noise)
SOURCES = ("algorithm.py", "evaluators.py", "noise.py", "noise_aware.py", "order.py", "robustness.py",
           "sampler.py", "sampling.py", "search_loop.py", "space.py")


def fingerprint(space, window_hi: float, max_asks: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(space.latency, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(space.counts).tobytes())
    settings = {"window_hi": float(window_hi), "max_asks": int(max_asks), "stall": [STALL_ASKS, STALL_NEW],
                "optuna": optuna.__version__, "numpy": np.__version__}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for name in SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


class SearchCache:
    """``load`` / ``save`` one search's (facts, result, seconds) under ``root/<fingerprint>``."""

    def __init__(self, root: Path, space, window_hi: float, max_asks: int):
        self.directory = Path(root) / fingerprint(space, window_hi, max_asks)

    def _path(self, level: dict, seed: int, method: str) -> Path:
        return self.directory / f"{level['level']}-seed{seed}-{method}.json"

    def load(self, level: dict, seed: int, method: str) -> tuple | None:
        path = self._path(level, seed, method)
        try:
            data = json.loads(path.read_text())
            if data["level"] != level:   # e.g. another measured share under the same name
                return None
            result = dict(data["result"], curve=np.asarray(data["result"]["curve"], dtype=float))
            return tuple(data["facts"]), result, float(data["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, level: dict, seed: int, method: str, facts: tuple, result: dict, seconds: float) -> None:
        record = {"level": level, "seed": seed, "method": method, "facts": list(facts), "seconds": seconds,
                  "result": dict(result, curve=[float(v) for v in result["curve"]])}
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._path(level, seed, method), json.dumps(record) + "\n")
