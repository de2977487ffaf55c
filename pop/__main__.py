"""``pop``: Partial Order Pruning — latency look-up table, search space, Algorithm 1, workers,
reports.  ``python -m pop --help``, ``pop --help`` and ``dfseg pop --help`` are the same command.

Errors go through dfseg's one error path (``dfseg.base.cli.run_cli``): every pop error class
derives from ``InputError`` (bad input: one line, exit 2), anything else is a bug (exit 1), and
output piped into ``head`` that stops reading ends quietly with exit 0.
"""
from __future__ import annotations

import sys

from dfseg.base.cli import run_cli

from .cli_parser import build_parser
from .commands import UsageError

__all__ = ["main", "build_parser", "UsageError"]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``pop ARGS``; ``prog`` is the name usage lines show (``dfseg pop`` under ``dfseg``)."""
    prog = prog or "pop"
    # the parser runs inside run_cli too, so `pop --help | head -1` ends quietly
    return run_cli(lambda: _parse_and_run(argv, prog), prog=prog)


def _parse_and_run(argv: list[str] | None, prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    name = f"{prog} {args.command}"   # errors name the subcommand: "pop search: error: ..."
    return run_cli(lambda: _run(args, name), prog=name)


def _run(args, name: str) -> int:
    try:
        code = args.func(args)
        # a reader that closed the pipe (`| head -1`) shows here, inside run_cli, rather
        # than in Python's flush at exit, which would print "Exception ignored"
        sys.stdout.flush()
    except KeyboardInterrupt:   # a search is resumable: say so rather than run_cli's plain line
        print(f"{name}: interrupted (completed trials are kept in the study)", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
