"""Several processes opening a brand-new SQLite store at once all get it (the schema-creation
race that killed one of two `pop search` started together)."""
from __future__ import annotations

import multiprocessing as mp

from pop.leases import Leases
from pop.storage import open_storage


def _open(url: str, queue) -> None:
    try:
        storage = open_storage(url)
        Leases(url, "race", timeout=30)
        storage.engine.dispose()
        queue.put("ok")
    except BaseException as e:  # report, don't hang the parent
        queue.put(f"{type(e).__name__}: {e}")


def test_concurrent_first_open_of_a_new_store(tmp_path):
    ctx = mp.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path}/race{attempt}.db"
        queue = ctx.Queue()
        procs = [ctx.Process(target=_open, args=(url, queue)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == ["ok"] * 4, results
