"""Storage URLs get a PostgreSQL driver that is installed (issue 11: SQLAlchemy 2.1 picks
psycopg 3 for a bare postgresql:// URL, and the documented URL failed where only psycopg2
was installed); a missing driver is one line saying what to install."""
from __future__ import annotations

import importlib.util

import pytest

from pop import storage_url
from pop.__main__ import main as pop_main
from pop.storage_url import PG_DRIVERS, StorageUrlError, resolve_storage_url


def test_bare_postgresql_url_gets_an_installed_driver():
    url = resolve_storage_url("postgresql://pop@db.example/pop")
    scheme, rest = url.split("://")
    driver = scheme.split("+")[1]
    assert rest == "pop@db.example/pop" and importlib.util.find_spec(PG_DRIVERS[driver][0]) is not None
    assert resolve_storage_url("postgres://pop@db.example/pop") == url
    assert resolve_storage_url("sqlite:///pop.db") == "sqlite:///pop.db"


def test_the_default_driver_is_preferred(monkeypatch):
    monkeypatch.setattr(storage_url, "_installed", lambda module: True)
    default = storage_url._default_pg_driver()
    assert resolve_storage_url("postgresql://h/d") == f"postgresql+{default}://h/d"


def test_the_dependencies_install_sqlalchemys_default_driver():
    """pyproject's dependencies carry the driver SQLAlchemy picks for a bare URL."""
    default = storage_url._default_pg_driver()
    assert default in PG_DRIVERS and importlib.util.find_spec(PG_DRIVERS[default][0]) is not None, \
        f"pip install '{PG_DRIVERS[default][1]}' (pyproject lists it)"


def test_no_driver_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(storage_url, "_installed", lambda module: False)
    with pytest.raises(StorageUrlError, match=r"no PostgreSQL driver is installed \(pip install 'psycopg\[binary\]'\)"):
        resolve_storage_url("postgresql://h/d")
    with pytest.raises(StorageUrlError, match="driver 'pg8000' is not installed"):
        resolve_storage_url("postgresql+pg8000://h/d")
    assert pop_main(["worker", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--study", "x",
                     "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no PostgreSQL driver" in err and "Traceback" not in err
