"""``python -m dfseg``: the ``dfseg`` command (dfseg.cli) without the console script."""
import sys

from dfseg.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="dfseg"))
