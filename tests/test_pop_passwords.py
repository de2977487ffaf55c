"""No password of a storage URL in anything `pop` prints or writes (issue 23, item 1).

Without a server: PostgreSQL URLs with a password to a port where nothing listens (connection
refused), and SQLite studies whose trainings fail with errors that quote such a URL.  With a
real server (password authentication, PGPASSWORD, ~/.pgpass, a service file):
tests/test_pop_postgres.py."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig
from tests.pop_cli import assert_not_leaked, pop

PASSWORD = "S3cretPW-9f4e"
SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2},
                    {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}],
         "input_size": [224, 224], "latency_ms": [0.0, 1e9]}
FAILING = f"""\
class Eval:
    def evaluate(self, encoding, workdir):
        raise RuntimeError("cannot reach postgresql://bob:{PASSWORD}@results.lab/acc (timeout)")
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again when the block ends: connection refused


def assert_no_password(tmp_path: Path, *outputs) -> None:
    assert_not_leaked(PASSWORD, tmp_path, *outputs, skip=(tmp_path / "lib",))   # lib/: the test's module


@pytest.fixture
def files(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "failing_eval.py").write_text(FAILING)
    return tmp_path


def test_unreachable_postgresql_password_never_shown(files):
    url = f"postgresql://alice:{PASSWORD}@127.0.0.1:{_closed_port()}/pop"
    space = ["--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut"]
    common = ["--storage", url, "--study", "s", "--workdir", files / "runs", "--quiet"]
    runs = {
        "search": pop("search", *space, *common, check=False),
        "search --create-only": pop("search", *space, *common, "--create-only", check=False),
        "worker": pop("worker", *common, check=False),
        "optuna": pop("optuna", *space, *common, "--budget", 3, check=False),
        "report": pop("report", "--storage", url, "--study", "s", "--out", files / "report", check=False),
        "worker, traceback": pop("worker", *common, check=False, env=dict(os.environ, DFSEG_DEBUG="1")),
        "unknown driver": pop("worker", "--storage", url.replace("postgresql:", "postgresql+nodriver:"),
                              "--study", "s", check=False),
    }
    for name, out in runs.items():
        assert out.returncode == 2, (name, out.stderr)
        assert "alice:***@127.0.0.1" in out.stderr, (name, out.stderr)
    assert "Traceback" in runs["worker, traceback"].stderr
    assert_no_password(files, *runs.values())


def test_errors_quoting_a_url_are_masked(files):
    """A training that fails with a message holding a URL: the worker's log lines and its
    final error show it masked; the study, the work directory and the report hold no password."""
    url = f"sqlite:///{files}/pop.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(files / "lib"), os.environ.get("PYTHONPATH")])))
    search = pop("search", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
                 "--storage", url, "--study", "s", "--workdir", files / "runs", "--quiet",
                 "--evaluator", "failing_eval:Eval", check=False, env=env)
    assert search.returncode == 2, search.stderr
    assert "3 trainings failed in a row" in search.stderr and "bob:***@results.lab" in search.stderr
    assert search.stdout.count("bob:***@results.lab") == 3
    optuna = pop("optuna", "--space", files / "space.yaml", "--lut", files / "lut.json", "--allow-foreign-lut",
                 "--storage", url, "--study", "o", "--workdir", files / "runs", "--quiet", "--budget", 3,
                 "--evaluator", "failing_eval:Eval", check=False, env=env)
    assert optuna.returncode == 2 and "bob:***@results.lab" in optuna.stderr, optuna.stderr
    report = pop("report", "--storage", url, "--study", "s", "--out", files / "report")
    assert_no_password(files, search, optuna, report)
