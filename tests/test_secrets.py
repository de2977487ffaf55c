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
