"""Where is the Caffe dfseg runs on?  Prints its root, binary and pycaffe folder, or why
there is none (the search itself: tools.runtime.caffe).

    python -m tools.caffe_locate
"""
from __future__ import annotations

import argparse
import sys

from dfseg.base.cli import run_cli
from tools.runtime.caffe import checked_install


def _run() -> int:
    install = checked_install()
    print(f"root:   {install.root}  ({install.source})")
    print(f"binary: {install.binary or '-'}")
    print(f"python: {install.python_dir or '-'}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.caffe_locate"
    argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0]).parse_args(argv)
    return run_cli(_run, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
