"""Running the `pop` command line from tests (one helper for every test module that does)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pop(*args, check=True, **kw):
    """`python -m pop ARGS` in the repository; raises with its stderr when it fails and `check`."""
    out = subprocess.run([sys.executable, "-m", "pop", *map(str, args)], cwd=REPO, capture_output=True,
                         text=True, **kw)
    if check and out.returncode != 0:
        raise AssertionError(out.stderr)
    return out


def assert_not_leaked(secret: str, root: Path, *outputs, skip: tuple[Path, ...] = ()) -> None:
    """``secret`` in no output (``subprocess.CompletedProcess``) and in no file under ``root``
    (except under ``skip``: a test's own fixtures)."""
    for out in outputs:
        assert secret not in out.stdout + out.stderr, out.stdout + out.stderr
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            assert secret.encode() not in path.read_bytes(), path
