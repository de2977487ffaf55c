"""``pop``: Partial Order Pruning — latency look-up table, search space, Algorithm 1, workers,
reports.  ``python -m pop --help``."""
from __future__ import annotations

import sys

from prototxt_gen.encoding import EncodingError
from dfseg.base.cli import one_line

from .backends import BackendError
from .cli_parser import build_parser
from .commands import UsageError
from .evaluators import EvaluationError
from .lut import LutError
from .space import SpaceError
from .storage_url import StorageUrlError
from .study import StudyError

__all__ = ["main", "build_parser", "UsageError"]

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    known = (UsageError, SpaceError, LutError, StudyError, StorageUrlError, EvaluationError, EncodingError,
             BackendError)
    try:
        return args.func(args)
    except known as e:
        print(f"pop {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path that is a file or a folder, a missing folder, a full disk
        print(f"pop {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"pop {args.command}: interrupted (completed trials are kept in the study)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
