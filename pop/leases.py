"""Claims on POP candidates, with liveness: the lease table beside Optuna's tables (see
pop.study's docstring, "Concurrency").  A lease row records the worker, the heartbeat on the
database clock, and the number of the Optuna trial that trains the candidate (Optuna's
public trial number, so a dead owner's trial is told FAIL through ``Study.tell``)."""
from __future__ import annotations

import threading

import sqlalchemy as sa

from .storage import StudyError, _retry_create, _sqlite_pragmas
from .storage_url import resolve_storage_url

def _now_sql(dialect: str) -> str:
    if dialect == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    if dialect == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    raise StudyError(f"storage dialect {dialect!r} not supported (use sqlite or postgresql)")


class Leases:
    """Claims on candidates, with liveness (heartbeat on the database clock)."""

    def __init__(self, url: str, study: str, timeout: float):
        url = resolve_storage_url(url)
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = sa.create_engine(url, **kwargs)
        _sqlite_pragmas(self.engine)
        self.study = study
        self.timeout = float(timeout)
        self.now = _now_sql(self.engine.dialect.name)
        _retry_create(self._create_table, "pop_leases")

    def _create_table(self) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS pop_leases (study VARCHAR(512) NOT NULL, candidate INTEGER NOT NULL, "
                "worker VARCHAR(256) NOT NULL, trial_id INTEGER, heartbeat DOUBLE PRECISION NOT NULL, "
                "state VARCHAR(16) NOT NULL, PRIMARY KEY (study, candidate))"))

    def live(self) -> dict[int, str]:
        """candidate -> state for leases that block a claim (fresh 'running', or 'done')."""
        with self.engine.begin() as c:
            rows = c.execute(sa.text(
                f"SELECT candidate, state FROM pop_leases WHERE study = :s AND "
                f"(state = 'done' OR heartbeat >= {self.now} - :t)"), {"s": self.study, "t": self.timeout})
            return {int(r[0]): r[1] for r in rows}

    def claim(self, candidate: int, worker: str) -> tuple[bool, int | None]:
        """Claim `candidate`; returns (claimed, trial id of a dead owner to mark failed)."""
        with self.engine.begin() as c:
            try:
                with c.begin_nested():
                    c.execute(sa.text(
                        f"INSERT INTO pop_leases (study, candidate, worker, trial_id, heartbeat, state) "
                        f"VALUES (:s, :c, :w, NULL, {self.now}, 'running')"),
                        {"s": self.study, "c": candidate, "w": worker})
                return True, None
            except sa.exc.IntegrityError:
                pass
            old = c.execute(sa.text(
                f"SELECT trial_id, worker, heartbeat < {self.now} - :t FROM pop_leases WHERE study = :s "
                f"AND candidate = :c AND state = 'running'"),
                {"s": self.study, "c": candidate, "t": self.timeout}).first()
            if old is not None and old[1] == worker and old[0] is None:
                return True, None   # our own insert, run again after its reply was lost (Reconnect)
            if old is None or not old[2]:
                return False, None
            taken = c.execute(sa.text(
                f"UPDATE pop_leases SET worker = :w, trial_id = NULL, heartbeat = {self.now} "
                f"WHERE study = :s AND candidate = :c AND state = 'running' AND heartbeat < {self.now} - :t"),
                {"s": self.study, "c": candidate, "w": worker, "t": self.timeout}).rowcount
            return taken == 1, (old[0] if taken == 1 else None)

    def owned_trials(self) -> set[int]:
        """Trial numbers of the fresh 'running' leases: trials someone is training now."""
        with self.engine.begin() as c:
            rows = c.execute(sa.text(
                f"SELECT trial_id FROM pop_leases WHERE study = :s AND state = 'running' AND trial_id IS NOT NULL "
                f"AND heartbeat >= {self.now} - :t"), {"s": self.study, "t": self.timeout})
            return {int(r[0]) for r in rows}

    def attach_trial(self, candidate: int, worker: str, trial_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE pop_leases SET trial_id = :i WHERE study = :s AND candidate = :c AND worker = :w"),
                      {"i": trial_id, "s": self.study, "c": candidate, "w": worker})

    def heartbeat(self, candidate: int, worker: str) -> bool:
        """Refresh; False when the lease is no longer ours (taken over after a stall)."""
        with self.engine.begin() as c:
            return c.execute(sa.text(
                f"UPDATE pop_leases SET heartbeat = {self.now} WHERE study = :s AND candidate = :c "
                f"AND worker = :w AND state = 'running'"), {"s": self.study, "c": candidate, "w": worker}).rowcount == 1

    def finish(self, candidate: int, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE pop_leases SET state = 'done' WHERE study = :s AND candidate = :c AND worker = :w"),
                      {"s": self.study, "c": candidate, "w": worker})

    def release(self, candidate: int, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("DELETE FROM pop_leases WHERE study = :s AND candidate = :c AND worker = :w "
                              "AND state = 'running'"), {"s": self.study, "c": candidate, "w": worker})


class _Heartbeat(threading.Thread):
    def __init__(self, leases: Leases, candidate: int, worker: str, interval: float):
        super().__init__(daemon=True)
        self.leases, self.candidate, self.worker, self.interval = leases, candidate, worker, interval
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                if not self.leases.heartbeat(self.candidate, self.worker):
                    self.lost = True
                    return
            except sa.exc.SQLAlchemyError:
                continue  # a database hiccup: try again next beat (the timeout allows several misses)


# ----------------------------------------------------------------------------- replay
