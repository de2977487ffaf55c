"""Passwords out of what dfseg prints, logs and writes.

A storage URL such as ``postgresql://alice:S3cret@db.lab/pop`` carries its password; every
message, progress line, report or JSON file that quotes a URL goes through :func:`mask_url`
(or :func:`mask_urls_in` for a text that may contain one, e.g. a driver's error message), so the
password never reaches a terminal, a log or CI output.  The conventional ways to keep it out of
the URL altogether (``PGPASSWORD``, ``~/.pgpass``, a ``service=`` entry) need nothing of this.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

__all__ = ["MASK", "mask_url", "mask_urls_in"]

MASK = "***"

# scheme://[user[:password]@]host...: the user part ends at the LAST '@' before the path, so a
# password holding a raw '@' (legal in practice, if not by RFC 3986) is masked whole.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")
_SECRET_KEYS = {"password", "passwd", "pwd", "sslpassword", "secret", "token"}


def _mask_netloc(netloc: str) -> str:
    user, at, host = netloc.rpartition("@")
    if not at or ":" not in user:
        return netloc
    name, _, _password = user.partition(":")
    return f"{name}:{MASK}@{host}"


def _mask_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(key.lower() in _SECRET_KEYS for key, _ in pairs):
        return query
    return urlencode([(key, MASK if key.lower() in _SECRET_KEYS else value) for key, value in pairs],
                     safe="*/:")


def mask_url(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=...``) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = min((i for i in (rest.find("/", rest.rfind("@") + 1), rest.find("?")) if i >= 0),
                        default=len(rest))
    # the '@' that ends the user part must come before the path and the query
    netloc, tail = rest[:authority_end], rest[authority_end:]
    path, qmark, query = tail.partition("?")
    return f"{scheme}://{_mask_netloc(netloc)}{path}{qmark}{_mask_query(query) if qmark else ''}"


def mask_urls_in(text: str) -> str:
    """Every URL inside ``text`` masked (for messages that quote a URL among other words)."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)
