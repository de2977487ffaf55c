"""The root of dfseg's bad-input errors (kept apart so every floor-0 module can derive from it)."""
from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """Base of every error that means bad input (a file, a name, a size, a setting): a command
    prints its message as one line and exits 2 (dfseg.base.cli.run_cli)."""
