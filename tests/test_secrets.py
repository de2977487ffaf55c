"""dfseg.base.secrets: a storage URL's password never reaches a message, log or file."""
from __future__ import annotations

import pytest

from dfseg.base.secrets import mask_url, mask_urls_in


@pytest.mark.parametrize("url, masked", [
    ("postgresql://alice:S3cretPW@host/db", "postgresql://alice:***@host/db"),
    ("postgresql+psycopg://alice:p@ss/w0rd@host:5432/db?sslmode=require",
     "postgresql+psycopg://alice:***@host:5432/db?sslmode=require"),
    ("postgresql://alice:S3cret@host", "postgresql://alice:***@host"),
    ("postgresql://host/db?user=a&password=zz&sslmode=x", "postgresql://host/db?user=a&password=***&sslmode=x"),
    # nothing secret: unchanged
    ("postgresql://alice@host/db", "postgresql://alice@host/db"),
    ("postgresql:///pop?service=lab", "postgresql:///pop?service=lab"),
    ("sqlite:///work/pop.db", "sqlite:///work/pop.db"),
    ("not a url", "not a url"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_mask_urls_in_a_message():
    text = "storage 'postgresql+psycopg://alice:S3cretPW@localhost/db': cannot open (refused); see sqlite:///x.db"
    out = mask_urls_in(text)
    assert "S3cretPW" not in out
    assert out == "storage 'postgresql+psycopg://alice:***@localhost/db': cannot open (refused); see sqlite:///x.db"


@pytest.mark.parametrize("debug", ["", "1"])
def test_the_one_error_path_masks_urls(capsys, monkeypatch, debug):
    """run_cli's one line (and the --debug traceback) show no password, whatever raised."""
    from dfseg.base.cli import run_cli
    from dfseg.base.errors import InputError
    monkeypatch.setenv("DFSEG_DEBUG", debug)

    def fails(error):
        raise error("storage 'postgresql://alice:S3cretPW@db/pop': cannot open")

    assert run_cli(lambda: fails(InputError), prog="x") == 2
    assert run_cli(lambda: fails(RuntimeError), prog="x") == 1
    err = capsys.readouterr().err
    assert "S3cretPW" not in err and err.count("alice:***@db/pop") == (6 if debug else 2)
    assert ("Traceback" in err) == bool(debug)
