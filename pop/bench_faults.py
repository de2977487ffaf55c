"""The faults of the distributed-search benchmark (``make bench-distributed``), as data.

Three kinds, injected into one study that 8 ``pop worker`` processes search on PostgreSQL:

* ``sigkill``: a random worker that is training killed with SIGKILL every few seconds (``FaultPlan.kill_every``,
  uniform, seeded), a new one started at once;
* ``postgres_restart``: the server stopped (``pg_ctl stop -m fast``: every session ends at
  once) when a share of the expected trainings is done, started again after
  ``outage_seconds``;
* ``disk_full``: the small file system under the workers' ``--workdir`` filled (its blocks
  and its inodes, so even a training's mkdir fails with ENOSPC) for ``disk_seconds``, then
  emptied again, as an operator would.

:class:`SmallFs` is that file system: a tmpfs mounted for the benchmark (root only).  Where
mounting is impossible there is no honest way to make writes fail with ENOSPC, so the fault
is recorded as not injected, with the reason, rather than imitated.
"""
from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class FaultPlan:
    """When and how long; shares are of the trainings the one-worker run needed."""

    kill_every: tuple[float, float] = (3.0, 6.0)   # seconds between two SIGKILLs
    # a kill waits while fewer than this share of the workers train: a replacement replays
    # the whole study before it trains, and on a starved CPU kills would otherwise leave
    # none training at all (the wait is recorded with each kill)
    keep_training: float = 0.5
    outage_at: float = 0.3
    outage_seconds: float = 15.0
    disk_at: float = 0.6
    disk_seconds: float = 8.0
    seed: int = 0

    def __post_init__(self):
        lo, hi = self.kill_every
        if not 0 < lo <= hi:
            raise ValueError(f"kill_every {self.kill_every}: need 0 < low <= high")
        for name in ("outage_at", "disk_at", "keep_training"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} {getattr(self, name)}: a share, in [0, 1)")

    def kill_gaps(self) -> Iterator[float]:
        """Seconds between consecutive kills: the same sequence for the same seed."""
        rng = random.Random(self.seed)
        while True:
            yield rng.uniform(*self.kill_every)

    def victims(self) -> random.Random:
        """Which worker each kill picks (a stream apart from the gaps)."""
        return random.Random(self.seed + 1)

    def due(self, kind: str, done: int, expected: int) -> bool:
        """Whether the progress `done` of `expected` trainings has reached the fault's share."""
        share = {"postgres_restart": self.outage_at, "disk_full": self.disk_at}[kind]
        return done >= share * expected


@dataclass
class Fault:
    """One injected fault as ``bench/distributed.json`` lists it (times in seconds from the
    start of the 8-worker run)."""

    kind: str
    at_s: float
    duration_s: float | None = None        # how long the fault lasted (server down, disk full)
    recovery_s: float | None = None        # until the search had made progress past it again
    workers_affected: list[int] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"kind": self.kind, "at_s": round(self.at_s, 2),
               "duration_s": None if self.duration_s is None else round(self.duration_s, 2),
               "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 2),
               "workers_affected": sorted(self.workers_affected)}
        return {**out, **self.detail}


class LineTail:
    """The complete lines appended to a file since the last :meth:`read`, each stamped with
    the time it was first seen (a worker's log has no clock of its own)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""
        self.lines: list[tuple[float, str]] = []

    def read(self, now: float) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        new = [line.decode("utf-8", "replace") for line in complete]
        self.lines += [(now, line) for line in new]
        return new


class MountError(OSError):
    """The small file system could not be mounted here; the message says why."""


class SmallFs:
    """A tmpfs of ``size_mb`` and ``inodes`` at ``path``: fill it, free it, unmount it."""

    def __init__(self, path: Path, size_mb: int = 16, inodes: int = 16384):
        self.path = Path(path)
        self.size_mb, self.inodes = size_mb, inodes
        self.mounted = False
        self.filler = self.path / ".bench-filler"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,nr_inodes={self.inodes}",
                               "dfseg-bench", str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise MountError(f"mount -t tmpfs on {self.path} failed: "
                             f"{(done.stderr or done.stdout).strip() or 'exit ' + str(done.returncode)}")
        self.mounted = True

    def fill(self) -> dict:
        """Use up every block, then every inode; returns what it took."""
        self.filler.mkdir(exist_ok=True)
        blocks = self._fill_blocks(self.filler / "blocks")
        files = 0
        while True:
            try:
                (self.filler / f"i{files}").touch()
            except OSError:
                break
            files += 1
        return {"filled_bytes": blocks, "filled_inodes": files}

    @staticmethod
    def _fill_blocks(path: Path) -> int:
        written, chunk = 0, 1 << 20
        # filler, not a result: no atomic write (it must fill the disk), unbuffered so each
        # failed write is seen at once; halving the chunk takes the last pages too
        with open(path, "wb", buffering=0) as f:
            while chunk >= 4096:
                try:
                    written += f.write(b"\0" * chunk)
                except OSError:
                    chunk //= 2
        return written

    def free(self) -> None:
        for entry in os.scandir(self.filler):
            os.unlink(entry.path)
        self.filler.rmdir()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.mounted = False
