"""Many POP workers on a real PostgreSQL server (Debian's package, started on loopback here).

Three workers share one study; one is SIGKILLed in the middle of a training.  Every candidate
must be trained exactly once, no result may be lost, and the final boundary must equal the
single-worker run with the same seed."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pop.evaluators import Surrogate
from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig
from pop.study import SearchSpec, create_study, final_state, load_study, run_worker

REPO = Path(__file__).resolve().parent.parent


def _pg_bin() -> Path | None:
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists():
            return root
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """initdb in a temporary directory, postgres on a free 127.0.0.1 port, torn down after.
    Installs Debian's `postgresql` package when missing (CI runs as root).  PostgreSQL
    refuses to run as root, so as root the server runs as the `postgres` user."""
    if _pg_bin() is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("PostgreSQL is not installed and cannot be installed (not root or no apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    bindir = _pg_bin()
    assert bindir is not None, "postgresql installed but initdb not found"
    data = Path(tempfile.mkdtemp(prefix="pop-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "postgres"
        subprocess.run(["id", user], check=True, capture_output=True)
        shutil.chown(data, user, user)
        run_as = ["runuser", "-u", user, "--"]
    port = _free_port()
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres",
                             "--no-sync"], check=True, capture_output=True)
    log = data / "server.log"
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(log), "-w", "-t", "60",
                             "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
                             "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


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
