"""Shared fixtures.  Reference material (the authors' released files, ICNet's prototxts and
the paper's figures) is read from ../shared/reference or $DFSEG_REFERENCE; tests that need
it skip with a clear message where it is absent."""
from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


# Caffe comes from tools.runtime.caffe.  `make test` builds it first (`make caffe`), so a
# missing Caffe is a failure, never a skip.

@pytest.fixture(scope="session")
def caffe():
    """pycaffe, in CPU mode."""
    from tools.runtime.caffe import CaffeNotFound, import_caffe
    try:
        module = import_caffe()
    except (CaffeNotFound, ImportError, OSError) as e:
        pytest.fail(f"pycaffe is needed here: {e}")
    module.set_mode_cpu()
    return module


@pytest.fixture(scope="session")
def caffe_bin() -> Path:
    """Path of the `caffe` command-line tool."""
    from tools.runtime.caffe import CaffeNotFound, caffe_binary
    try:
        return caffe_binary()
    except CaffeNotFound as e:
        pytest.fail(f"the caffe binary is needed here: {e}")


# What dfseg's generated PyTorch code promises: it runs where dfseg is not.

def _requirement_closure(names) -> list[metadata.Distribution]:
    """The distributions `names` need, by their own metadata (extras left out)."""
    seen, todo, dists = set(), list(names), []
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        dists.append(dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dists


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A virtualenv of /usr/bin/python3 whose site-packages holds only links to torch, numpy
    and their declared requirements in .venv: not protobuf, not yaml, not dfseg."""
    system = Path("/usr/bin/python3")
    if not system.is_file():
        pytest.skip("no /usr/bin/python3 to make a bare virtualenv from")
    root = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", root], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    linked = set()
    for dist in _requirement_closure(["torch", "numpy"]):
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or top in linked:
                continue
            source = Path(dist.locate_file(top))
            if source.exists():
                (site / top).symlink_to(source)
                linked.add(top)
    assert {"torch", "numpy"} <= linked and not {"google", "yaml", "tools"} & linked
    return python
