"""The Optuna storage of a POP search: SQLite for one machine, PostgreSQL for many; schema
creation retried when concurrent starts race, SQLite tuned for concurrent writers."""
from __future__ import annotations

import time

import optuna
import sqlalchemy as sa

from dfseg.base.errors import InputError
from dfseg.base.secrets import mask_url, mask_urls_in

from .storage_url import resolve_storage_url

class StudyError(InputError, RuntimeError):
    pass


def _sqlite_pragmas(engine: sa.engine.Engine) -> None:
    """WAL journal, no fsync per commit: a killed process loses nothing committed (only a
    power cut could), and a trial costs milliseconds instead of a dozen disk flushes."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()


# Two processes creating the same schema at once: one wins, the other sees a duplicate key
# (alembic_version on SQLite, pg_type on PostgreSQL) although the schema is now there. A
# second try then finds the tables and goes on.
_CREATE_RACE = ("alembic_version", "already exists", "duplicate key", "UNIQUE constraint", "IntegrityError",
                "database is locked")
_CREATE_TRIES = 6


def _lost_create_race(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    cause = err.__cause__ or err.__context__
    return any(m in text for m in _CREATE_RACE) or (cause is not None and _lost_create_race(cause))


def _retry_create(create, what: str):
    for attempt in range(_CREATE_TRIES):
        try:
            return create()
        except Exception as e:
            if attempt == _CREATE_TRIES - 1 or not _lost_create_race(e):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError(what)  # not reached


def open_storage(url: str) -> optuna.storages.RDBStorage:
    url = resolve_storage_url(url)   # a bare postgresql:// gets an installed driver
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        storage = _retry_create(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs), "storage")
    except Exception as e:  # optuna wraps driver errors in many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"storage {mask_url(url)!r}: cannot open ({mask_urls_in(msg)})")  # no password shown
    _sqlite_pragmas(storage.engine)
    return storage


# ----------------------------------------------------------------------------- search spec
