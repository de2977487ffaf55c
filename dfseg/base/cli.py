"""The one error path of every dfseg command: bad input -> exit 2 and one line naming the file
and the problem; a bug -> exit 1, one line and a hint, the traceback only when asked for.

Every error class of the package that means "what the user gave is wrong" derives from
:class:`InputError` (alongside ``ValueError`` or ``RuntimeError`` where code catches those), so
``run_cli`` needs no list of them.  ``OSError`` (a missing file, a full disk) counts as bad input
too.  The traceback of a bug is shown with ``dfseg --debug`` or ``DFSEG_DEBUG=1``
(``DFSEG_TRACEBACK=1``, the older name, still works).  What it prints, tracebacks included,
has the password of any URL in it masked (``dfseg.base.secrets``).

A command module exposes ``main(argv=None, prog=None) -> int``: ``prog`` is how the usage line
names it (``dfseg to-onnx`` when the ``dfseg`` command dispatches, ``python -m tools.to_onnx``
by default).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable

from dfseg.base.errors import InputError
from dfseg.base.secrets import mask_urls_in
from dfseg.base.sizes import SizeError, parse_hxw, parse_nchw, parse_shape

__all__ = ["CliError", "InputError", "EXIT_BAD_INPUT", "EXIT_BUG", "debug_requested", "hxw_argument", "nchw_argument",
           "nonnegative_seconds_argument", "one_line", "positive_int_argument", "run_cli", "shape_argument"]

EXIT_BAD_INPUT = 2
EXIT_BUG = 1
DEBUG_VARIABLES = ("DFSEG_DEBUG", "DFSEG_TRACEBACK")


class CliError(InputError):
    """An error whose message is already the one line the user should read."""


def debug_requested() -> bool:
    return any(os.environ.get(name) for name in DEBUG_VARIABLES)


def run_cli(main: Callable[[], int | None], prog: str | None = None) -> int:
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main()
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # output piped into e.g. `head`, which stopped reading
        _silence_closed_stdout()
        return 0
    except (InputError, OSError) as exc:
        _print_traceback_if_asked()
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: exit 1, so scripts tell it from bad input
        _print_traceback_if_asked()
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line(exc)} "
              f"(a bug: rerun with --debug or DFSEG_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_BUG


def _print_traceback_if_asked() -> None:
    if debug_requested():
        print(mask_urls_in(traceback.format_exc()), end="", file=sys.stderr)


def one_line(exc: BaseException) -> str:
    """The error as one line, any URL's password masked; an OSError as ``path: reason`` (its
    filename and strerror)."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return mask_urls_in(f"{exc.filename}: {exc.strerror}")
    return mask_urls_in(" ".join(str(exc).split())) or type(exc).__name__


def nchw_argument(text: str) -> tuple[int, int, int, int]:
    """An argparse `type` for a blob shape NxCxHxW (dfseg.base.sizes.parse_nchw): a bad
    one is argparse's one-line usage error, exit 2."""
    try:
        return parse_nchw(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def hxw_argument(text: str) -> tuple[int, int]:
    """An argparse `type` for a size HxW (dfseg.base.sizes.parse_hxw): a bad one is
    argparse's one-line usage error, exit 2."""
    try:
        return parse_hxw(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def shape_argument(text: str) -> tuple[int, ...]:
    """An argparse `type` for a blob shape of any number of axes, NxCxHxW or e.g. 8
    (dfseg.base.sizes.parse_shape)."""
    try:
        return parse_shape(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_int_argument(text: str) -> int:
    """An argparse `type` for a count that must be 1 or more (processes, seeds)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def nonnegative_seconds_argument(text: str) -> float:
    """An argparse `type` for a finite number of seconds, 0 or more (a wait, a window)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _silence_closed_stdout() -> None:
    """After a BrokenPipeError, Python's exit flush of stdout would fail again and print
    "Exception ignored ..."; point stdout at /dev/null so the exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
