"""Many POP workers on a real PostgreSQL server (Debian's package, started on loopback here).

Three workers share one study; one is SIGKILLed in the middle of a training.  Every candidate
must be trained exactly once, no result may be lost, and the final boundary must equal the
single-worker run with the same seed.

Passwords (issue 23): a role whose password the server checks; a search with the password in
the URL shows it nowhere (outputs, written files, the database), and the documented ways to
keep it out of the URL (PGPASSWORD, a password file, a service file) work with both drivers."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from pop.evaluators import Surrogate
from pop.lut import FlopsProxy, table_from_model
from pop.pg_local import pg_bindir, start_local
from pop.space import SpaceConfig
from pop.storage import StudyError, open_storage
from pop.study import SearchSpec, create_study, final_state, load_study, run_worker
from tests.pop_cli import assert_not_leaked, pop

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postgres_server():
    """A real server on loopback, torn down after: pop.pg_local (the bench's own), which
    installs Debian's `postgresql` package when missing (CI runs as root) and runs the server
    as the `postgres` user when we are root."""
    if pg_bindir() is None and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip("PostgreSQL is not installed and cannot be installed (not root or no apt-get)")
    folder = Path(tempfile.mkdtemp(prefix="pop-pg-"))
    folder.chmod(0o711)   # the server's user must reach its data folder inside
    server = start_local(folder / "server", log=lambda *_: None)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    return postgres_server.admin_url


def _spec(seed: int) -> SearchSpec:
    cfg = SpaceConfig.from_dict({
        "stages": [{"widths": [64, 128, 256], "max_depth": 3},
                   {"widths": [128, 256], "max_depth": 3},
                   {"widths": [256, 512], "max_depth": 3}],
        "input_size": [224, 224], "latency_ms": [1.0, 2.0]})
    table = table_from_model(cfg, FlopsProxy())
    return SearchSpec(cfg.to_dict(), table.to_json(), seed=seed, patience=12,
                      evaluator="surrogate:seed=3,delay=0.3", lease_timeout=2.0)


def _worker(url, study, trace):
    return subprocess.Popen([sys.executable, "-m", "pop", "worker", "--storage", url, "--study", study,
                             "--trace", str(trace), "--heartbeat", "0.2", "--poll", "0.1", "--quiet",
                             "--workdir", str(trace.parent / "runs")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _events(trace: Path) -> list[dict]:
    if not trace.exists():
        return []
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


def test_three_workers_one_killed_equal_single_worker(postgres_url, tmp_path):
    spec = _spec(seed=5)
    create_study(postgres_url, "multi", spec)
    trace = tmp_path / "trace.jsonl"
    workers = [_worker(postgres_url, "multi", trace) for _ in range(3)]
    victim_pid = victim_candidate = None
    deadline = time.time() + 120
    while victim_pid is None and time.time() < deadline:
        ev = _events(trace)
        if sum(e["event"] == "done" for e in ev) >= 8:
            last = {}
            for e in ev:
                last[e["worker"]] = e
            for wid, e in last.items():
                pid = int(wid.split(":")[1])
                # started under 0.1 s ago, training takes 0.3 s: certainly mid-training
                if e["event"] == "start" and time.time() - e["time"] < 0.1 and pid in {w.pid for w in workers}:
                    os.kill(pid, signal.SIGKILL)
                    victim_pid, victim_candidate = pid, e["candidate"]
                    break
        time.sleep(0.01)
    assert victim_pid is not None, "no worker was ever seen mid-training"
    for w in workers:
        out, err = w.communicate(timeout=300)
        if w.pid == victim_pid:
            assert w.returncode == -signal.SIGKILL
        else:
            assert w.returncode == 0, err

    ev = _events(trace)
    victim = [e for e in ev if int(e["worker"].split(":")[1]) == victim_pid]
    assert not any(e["event"] == "done" and e["candidate"] == victim_candidate for e in victim), \
        "the victim finished its candidate before the kill: not a mid-trial kill"

    multi, study, _ = final_state(postgres_url, "multi")
    from optuna.trial import TrialState
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    trained = [t.user_attrs["candidate"] for t in complete]
    assert len(trained) == len(set(trained)), "a candidate was trained twice"
    # no result lost: every reported training is a COMPLETE trial
    assert {e["candidate"] for e in ev if e["event"] == "done"} == set(trained)
    # the killed worker's candidate was offered again and trained by someone else
    assert victim_candidate in trained
    # every model Algorithm 1 used was trained
    assert set(multi.state.D) <= set(trained)
    assert multi.done

    create_study(postgres_url, "single", spec)
    # same accuracies, no simulated training time
    single = run_worker(postgres_url, "single", Surrogate(seed=3), workdir=tmp_path / "single", poll=0.05,
                        progress=False)
    assert single.state.D == multi.state.D
    assert single.state.boundary == multi.state.boundary
    assert (single.state.pruned == multi.state.pruned).all()


def test_the_documented_bare_postgresql_url_works(postgres_url):
    """README's postgresql://USER@HOST/DB, without a driver: whichever is installed serves it."""
    bare = "postgresql://" + postgres_url.split("://", 1)[1]
    create_study(bare, "bare", _spec(seed=1))
    _, spec = load_study(bare, "bare")
    assert spec.seed == 1


# ----------------------------------------------------------------------------- passwords
PASSWORD = "Pg-S3cret-71c2"
SMALL_SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                          {"widths": [256, 512], "max_depth": 2}], "input_size": [224, 224], "latency_ms": [0.0, 1e9]}


@pytest.fixture(scope="module")
def alice(postgres_server):
    """Role `alice` with a password the server checks (scram-sha-256 from 127.0.0.1), owner of
    database `lab`; returns "127.0.0.1:PORT"."""
    return postgres_server.add_role("alice", PASSWORD, "lab")


def _lab_dump(host: str) -> str:
    """Everything the study tables of `lab` hold, as text."""
    engine = sa.create_engine(f"postgresql+psycopg2://alice:{PASSWORD}@{host}/lab")
    with engine.connect() as c:
        tables = [r[0] for r in c.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        text = "\n".join(str(row) for t in tables for row in c.execute(sa.text(f'SELECT * FROM "{t}"')))
    engine.dispose()
    return text


def test_password_in_the_url_is_shown_nowhere(alice, tmp_path):
    url = f"postgresql://alice:{PASSWORD}@{alice}/lab"
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    table_from_model(SpaceConfig.from_dict(SMALL_SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    space = ["--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut"]
    run = ["--storage", url, "--workdir", tmp_path / "runs", "--quiet"]
    outs = [pop("search", *space, *run, "--study", "pw", "-K", 6),
            pop("worker", *run, "--study", "pw", "--trace", tmp_path / "trace.jsonl"),
            pop("report", "--storage", url, "--study", "pw", "--out", tmp_path / "report"),
            pop("search", *space, *run, "--study", "pw2", "--create-only"),
            pop("optuna", *space, *run, "--study", "nsga", "--budget", 4)]
    assert "trained " in outs[1].stdout and f"alice:***@{alice}/lab" in outs[3].stdout
    wrong = pop("worker", "--storage", url.replace(PASSWORD, PASSWORD[::-1]), "--study", "pw", check=False,
                env=dict(os.environ, DFSEG_DEBUG="1"))
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr, wrong.stderr
    assert PASSWORD[::-1] not in wrong.stdout + wrong.stderr
    missing = pop("worker", *run, "--study", "none", check=False)
    assert missing.returncode == 2 and f"alice:***@{alice}/lab" in missing.stderr, missing.stderr
    assert_not_leaked(PASSWORD, tmp_path, *outs, wrong, missing)
    dump = _lab_dump(alice)
    assert "pw" in dump and PASSWORD not in dump


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_password_out_of_the_url(alice, tmp_path, monkeypatch, driver):
    """docs/pop.md: PGPASSWORD, a password file (PGPASSFILE, ~/.pgpass), a service file."""
    for name in ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))
    plain = f"postgresql+{driver}://alice@{alice}/lab"
    with pytest.raises(StudyError, match="cannot open"):
        open_storage(plain)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    open_storage(plain).engine.dispose()
    monkeypatch.delenv("PGPASSWORD")

    line = f"{alice}:lab:alice:{PASSWORD}\n"
    for passfile in (tmp_path / "pgpass", tmp_path / "home" / ".pgpass"):
        passfile.parent.mkdir(exist_ok=True)
        passfile.write_text(line)
        passfile.chmod(0o600)   # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    open_storage(plain).engine.dispose()
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    open_storage(plain).engine.dispose()

    host, port = alice.split(":")
    (tmp_path / "pg_service.conf").write_text(
        f"[lab]\nhost={host}\nport={port}\ndbname=lab\nuser=alice\npassword={PASSWORD}\n")
    monkeypatch.setenv("HOME", str(tmp_path / "nobody"))
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    storage = open_storage(f"postgresql+{driver}:///lab?service=lab")
    assert storage.engine.url.password is None
    storage.engine.dispose()
    # and the bare URL the docs show, through `pop` itself (the environment as set above)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    table_from_model(SpaceConfig.from_dict(SMALL_SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    out = pop("search", "--space", tmp_path / "space.yaml", "--lut", tmp_path / "lut.json", "--allow-foreign-lut",
              "--storage", "postgresql:///lab?service=lab", "--study", f"svc-{driver}", "--create-only")
    assert "on postgresql:///lab?service=lab" in out.stdout and "created" in out.stdout
