"""Shared fixtures.  Reference material (the authors' released files, ICNet's prototxts and
the paper's figures) is read from ../shared/reference or $DFSEG_REFERENCE; tests that need
it skip with a clear message where it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def reference_root() -> Path:
    return Path(os.environ.get("DFSEG_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    root = reference_root()
    if not (root / "paper_tables.yaml").is_file():
        pytest.skip(f"reference material not found at {root} (set DFSEG_REFERENCE)")
    return root


@pytest.fixture(scope="session")
def paper_tables(reference_dir):
    import yaml
    return yaml.safe_load((reference_dir / "paper_tables.yaml").read_text())


# Caffe comes from tools.caffe_locate.  `make test` builds it first (`make caffe`), so a
# missing Caffe is a failure, never a skip.

@pytest.fixture(scope="session")
def caffe():
    """pycaffe, in CPU mode."""
    from tools.caffe_locate import CaffeNotFound, import_caffe
    try:
        module = import_caffe()
    except (CaffeNotFound, ImportError, OSError) as e:
        pytest.fail(f"pycaffe is needed here: {e}")
    module.set_mode_cpu()
    return module


@pytest.fixture(scope="session")
def caffe_bin() -> Path:
    """Path of the `caffe` command-line tool."""
    from tools.caffe_locate import CaffeNotFound, caffe_binary
    try:
        return caffe_binary()
    except CaffeNotFound as e:
        pytest.fail(f"the caffe binary is needed here: {e}")
