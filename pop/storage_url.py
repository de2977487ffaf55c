"""Storage URLs as users type them -> URLs whose database driver is installed.

A bare ``postgresql://USER@HOST/DB`` leaves the driver to SQLAlchemy, whose default changed
from psycopg2 to psycopg (3) in SQLAlchemy 2.1: with only one of them installed, the URL
the README documents failed with Optuna's "Failed to import DB access module".  Here a bare
URL gets SQLAlchemy's default driver when it is importable, else another installed one; an
explicit ``postgresql+DRIVER://`` is kept, and a missing driver is one line saying what to
install.
"""
from __future__ import annotations

import importlib.util

from dfseg.base.errors import InputError
from dfseg.base.secrets import mask_url

# SQLAlchemy driver name -> (module it imports, what to pip install)
PG_DRIVERS = {"psycopg": ("psycopg", "psycopg[binary]"), "psycopg2": ("psycopg2", "psycopg2-binary"),
              "pg8000": ("pg8000", "pg8000")}


class StorageUrlError(InputError, ValueError):
    """The URL names a database whose driver is not installed; the message says what to do."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _default_pg_driver() -> str:
    from sqlalchemy.dialects import postgresql
    return postgresql.dialect.driver


def resolve_storage_url(url: str) -> str:
    """``url`` with an installed PostgreSQL driver spelled out (other URLs as they are)."""
    scheme, sep, rest = url.partition("://")
    dialect, _, driver = scheme.partition("+")
    if not sep or dialect not in ("postgresql", "postgres"):
        return url
    if driver:
        module, package = PG_DRIVERS.get(driver, (driver, driver))
        if not _installed(module):
            raise StorageUrlError(f"storage {mask_url(url)!r}: the PostgreSQL driver {driver!r} is not installed "
                                  f"(pip install '{package}', or use postgresql:// for an installed one)")
        return f"postgresql+{driver}://{rest}"
    default = _default_pg_driver()
    for name in dict.fromkeys([default, *PG_DRIVERS]):
        if name in PG_DRIVERS and _installed(PG_DRIVERS[name][0]):
            return f"postgresql+{name}://{rest}"
    raise StorageUrlError(f"storage {mask_url(url)!r}: no PostgreSQL driver is installed "
                          f"(pip install '{PG_DRIVERS['psycopg'][1]}')")
