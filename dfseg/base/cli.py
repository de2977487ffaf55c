"""The CLI convention: bad input -> exit 2 and one line naming the file and the problem.

``run_cli(main)`` turns the errors a tool expects (:class:`CliError`, ``OSError``, the
tool's own error classes) into that line; anything else is a bug and still gets one line
(plus a hint to rerun with ``DFSEG_TRACEBACK=1`` for the traceback) instead of a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from dfseg.base.sizes import SizeError, parse_nchw

__all__ = ["CliError", "nchw_argument", "one_line", "run_cli"]


class CliError(Exception):
    """An error whose message is already the one line the user should read."""


def run_cli(main: Callable[[], int | None], prog: str | None = None,
            expected: Sequence[type[BaseException]] = ()) -> int:
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main()
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # output piped into e.g. `head`, which stopped reading
        return 0
    except (CliError, OSError, *expected) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, but the user still gets one line, not a traceback
        if os.environ.get("DFSEG_TRACEBACK"):
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line(exc)} "
              f"(rerun with DFSEG_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """The error as one line; an OSError as ``path: reason`` (its filename and strerror)."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def nchw_argument(text: str) -> tuple[int, int, int, int]:
    """An argparse `type` for a blob shape NxCxHxW (dfseg.base.sizes.parse_nchw): a bad
    one is argparse's one-line usage error, exit 2."""
    try:
        return parse_nchw(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
