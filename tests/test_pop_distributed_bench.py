"""The pieces of `make bench-distributed` (issue 23, item 3) that can be tested without the
full run, and the worker fixes it needed: riding out a lost database (pop.reconnect), trials
nobody trains any more, the exactly-once accounting, the password grep, the fault schedule,
the loop that injects the faults, and one real PostgreSQL restart under two workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from pop.bench_accounting import account, fault_costs, fault_summary, grep_secret, read_trace, same_search
from pop.bench_faults import Fault, FaultPlan, LineTail, MountError, SmallFs
from pop.bench_monitor import FaultyRun, RunLog, WorkerPool
from pop.evaluators import Surrogate
from pop.leases import Leases
from pop.lut import FlopsProxy, table_from_model
from pop.reconnect import OrphanReaper, Reconnect, is_transient
from pop.space import SpaceConfig
from pop.storage import StudyError
from pop.study import SearchSpec, _record, create_study, final_state, load_study, run_worker

SMALL = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}], "input_size": [224, 224], "latency_ms": [0.0, 1e9]}


def _spec(lease_timeout: float = 60.0, delay: float = 0.0) -> SearchSpec:
    cfg = SpaceConfig.from_dict(SMALL)
    return SearchSpec(cfg.to_dict(), table_from_model(cfg, FlopsProxy()).to_json(), seed=2, patience=10_000,
                      evaluator=f"surrogate:seed=3,delay={delay}", lease_timeout=lease_timeout)


def _lost_connection() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


# ----------------------------------------------------------------------------- reconnect
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_reconnect_retries_a_lost_connection_and_says_so_in_one_line():
    clock, lines, calls = FakeClock(), [], []

    def flaky():
        calls.append(clock.now)
        if len(calls) <= 4:
            # Optuna wraps the driver's error: the line must show the driver's words, not Optuna's
            try:
                raise _lost_connection()
            except sa.exc.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        return "ok"

    rc = Reconnect(window=60, log=lines.append, sleep=clock.sleep, clock=clock)
    assert rc.call(flaky) == "ok" and len(calls) == 5
    assert len(lines) == 1 and "server closed the connection unexpectedly" in lines[0] and "reconnected" in lines[0]
    assert rc.outages == 1 and rc.call(lambda: 7) == 7 and len(lines) == 1


def test_reconnect_gives_up_after_its_window_with_one_line_and_lets_other_errors_through():
    clock = FakeClock()
    rc = Reconnect(window=10, log=lambda _: None, sleep=clock.sleep, clock=clock)

    def down():
        raise _lost_connection()
    with pytest.raises(StudyError, match=r"lost the database for 1\d s \(server closed"):
        rc.call(down)
    assert 10 < clock.now < 13
    with pytest.raises(ValueError):
        rc.call(lambda: (_ for _ in ()).throw(ValueError("a bug, not the network")))
    assert not is_transient(ValueError("x")) and not is_transient(sa.exc.IntegrityError("x", {}, Exception()))
    assert is_transient(_lost_connection())


def test_reconnect_window_flag_reaches_the_worker(monkeypatch):
    """`pop worker --reconnect-window S` is the window the worker loop waits for its database
    (default pop.reconnect.DEFAULT_WINDOW), `pop search` takes it too; a negative one is a usage
    error, exit 2."""
    from pop import __main__ as pop_main, commands
    from pop.reconnect import DEFAULT_WINDOW
    got = []
    monkeypatch.setattr(commands, "run_worker", lambda *a, **kw: got.append(kw["reconnect"]) or SimpleNamespace())
    monkeypatch.setattr(commands, "_print_summary", lambda replay: None)
    worker = ["worker", "--storage", "sqlite:///unused.db", "--evaluator", "surrogate"]
    assert pop_main.main([*worker, "--reconnect-window", "7.5"]) == 0 and pop_main.main(worker) == 0
    assert got == [7.5, DEFAULT_WINDOW]
    assert pop_main.build_parser("pop").parse_args(["search", "--reconnect-window", "0"]).reconnect_window == 0.0
    for bad in ("-1", "inf", "soon"):
        with pytest.raises(SystemExit) as stop:
            pop_main.main([*worker, "--reconnect-window", bad])
        assert stop.value.code == 2


def test_orphan_reaper_fails_only_trials_unowned_for_a_whole_timeout():
    clock = FakeClock()
    reaper = OrphanReaper(timeout=5, clock=clock)
    assert reaper.due({1, 2, 3}, owned={2}) == []
    clock.now = 4
    assert reaper.due({1, 2, 3}, owned={2, 3}) == []      # 3 was attached meanwhile: its clock stops
    clock.now = 5.5
    assert reaper.due({1, 2, 3}, owned={2}) == [1]        # 3 is unowned again: counted afresh
    clock.now = 11
    assert reaper.due({1, 3}, owned=set()) == [1, 3]
    assert reaper.due({1, 3}, owned=set(), outages=1) == []   # after an outage nobody could heartbeat


# ----------------------------------------------------------------------------- worker fixes (SQLite)
def test_a_claim_run_again_after_a_lost_reply_is_still_ours(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    leases = Leases(url, "s", timeout=60)
    assert leases.claim(7, "a") == (True, None)
    assert leases.claim(7, "a") == (True, None)     # the same insert again: ours
    assert leases.claim(7, "b") == (False, None)
    leases.attach_trial(7, "a", 0)
    assert leases.owned_trials() == {0}
    assert leases.claim(7, "a") == (False, None)    # attached to a trial: a real second claim


def _worker_in_thread(url: str, name: str, **kw) -> threading.Thread:
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("replay", run_worker(url, name, **kw)), daemon=True)
    thread.out = out
    thread.start()
    return thread


def test_an_orphan_running_trial_does_not_stop_the_search(tmp_path):
    """A worker killed between ask() and attaching the trial leaves a RUNNING trial no lease
    names; the replay stops at the first RUNNING trial, so without the reaper every worker
    would wait for it for ever."""
    url = f"sqlite:///{tmp_path}/o.db"
    study = create_study(url, "o", _spec(lease_timeout=0.5))
    orphan = study.ask()                                    # the dead worker's trial
    worker = _worker_in_thread(url, "o", evaluator=Surrogate(seed=3), workdir=tmp_path / "runs", poll=0.05,
                               progress=False)
    worker.join(timeout=120)
    assert not worker.is_alive(), "the worker waits for a trial nobody trains"
    replay, study, _ = final_state(url, "o")
    assert study.trials[orphan.number].state == TrialState.FAIL and replay.done
    create_study(url, "clean", _spec(lease_timeout=0.5))
    clean = run_worker(url, "clean", Surrogate(seed=3), workdir=tmp_path / "runs", poll=0.05, progress=False)
    assert clean.state.D == replay.state.D and clean.state.boundary == replay.state.boundary


def test_a_result_whose_trial_was_reaped_is_kept_on_a_new_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    create_study(url, "r", _spec())
    study, _ = load_study(url, "r")
    leases = Leases(url, "r", timeout=60)
    assert leases.claim(3, "me")[0]
    trial = study.ask()
    leases.attach_trial(3, "me", trial.number)
    study.tell(trial.number, state=TrialState.FAIL)          # another worker's reaper, while we trained
    rc = Reconnect(log=lambda _: None)
    assert _record(study, leases, 3, "enc", "me", trial, [1.0, 0.7], rc)
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(done) == 1 and done[0].number != trial.number and done[0].user_attrs["candidate"] == 3
    assert done[0].values == [1.0, 0.7]
    # a lease no longer ours: the result is discarded, its trial failed
    assert leases.claim(4, "other")[0]
    other = study.ask()
    assert not _record(study, leases, 4, "enc", "me", other, [1.0, 0.6], rc)
    assert study.trials[other.number].state == TrialState.FAIL


# ----------------------------------------------------------------------------- accounting
def test_accounting_finds_duplicates_and_lost_results(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    create_study(url, "a", _spec())
    trace = tmp_path / "trace.jsonl"
    run_worker(url, "a", Surrogate(seed=3), workdir=tmp_path / "runs", poll=0.05, progress=False, trace=trace)
    events = read_trace(trace)
    acc, replay = account(url, "a", events, tmp_path / "runs")
    assert (acc.duplicated, acc.lost, acc.without_workdir, acc.running_left) == (0, 0, 0, 0)
    assert acc.finished and acc.trainings == acc.candidates == acc.used == len(replay.state.D)
    assert same_search(replay, replay) == {"boundary_equal": True, "D_equal": True, "pruned_equal": True}

    study, _ = load_study(url, "a")
    first = replay.state.D[0]
    twice = study.ask()
    twice.set_user_attr("candidate", first)
    # a second COMPLETE trial of one candidate (same values: the replay stays the same)
    study.tell(twice, values=[float(replay.space.latency[first]), replay.state.acc[first]])
    never = next(c for c in range(replay.space.size) if c not in set(replay.state.D))
    events.append({"event": "done", "candidate": never, "worker": "h:1:x", "time": time.time()})
    acc, _ = account(url, "a", events, tmp_path / "runs")
    assert acc.duplicated == 1 and acc.lost == 1 and acc.lost_candidates == [never]


def test_the_password_grep_searches_files_and_texts(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "log.txt").write_text("postgresql://dfseg:***@127.0.0.1/pop\n")
    (tmp_path / "a" / "blob.bin").write_bytes(b"\0\1Zq-9secret\2")
    found = grep_secret("Zq-9secret", [tmp_path / "a"], {"stdout": "nothing here", "json": '{"pw": "Zq-9secret"}'})
    assert found == {"files_searched": 2, "texts_searched": 2,
                     "found_in": [str(tmp_path / "a" / "blob.bin"), "json"]}
    assert grep_secret("absent", [tmp_path / "a"], {})["found_in"] == []


def _fake_worker(index, pid, lines, killed=False, ended=None, started=0.0):
    return SimpleNamespace(index=index, pid=pid, log=SimpleNamespace(lines=lines), killed=killed, ended=ended,
                           started=started)


def test_fault_costs_read_the_trace_and_the_logs():
    t0 = 1000.0
    outage = Fault("postgres_restart", 10.0, workers_affected=[0, 1, 2],
                   detail={"stopped_at": t0 + 10, "restarted_at": t0 + 25})
    kill = Fault("sigkill", 40.0, workers_affected=[3], detail={"pid": 33, "replacement": 4})
    workers = [
        _fake_worker(0, 30, [(t0 + 26, "pop worker: database unreachable for 15.2 s (connection failed: "
                                       "connection to server failed: Connection refused); reconnected")]),
        _fake_worker(1, 31, [(t0 + 12, "pop worker: training [(64)] failed: [Errno 28] No space left"),
                             (t0 + 13, "pop worker: error: storage 'x': cannot open (connection failed: x)")]),
        _fake_worker(2, 32, [], killed=True, ended=t0 + 15),
        _fake_worker(3, 33, [], killed=True, ended=t0 + 40),
        _fake_worker(4, 34, [], started=t0 + 40)]
    events = [{"event": "start", "candidate": 5, "worker": "h:33:a", "time": t0 + 39.5},
              {"event": "done", "candidate": 6, "worker": "h:30:a", "time": t0 + 27.0},
              {"event": "start", "candidate": 5, "worker": "h:34:b", "time": t0 + 46.0},
              {"event": "done", "candidate": 5, "worker": "h:34:b", "time": t0 + 46.5}]
    run = RunLog(started=t0, faults=[outage, kill], events=events,
                 stops=[{"worker": 1, "at_s": 13.0, "returncode": 2, "line": "pop worker: error: ..."}])
    fault_costs(run, workers, lease_timeout=5.0)
    d = outage.detail
    # a driver's "connection failed:" is no failed training: only pop's own line counts
    assert d["reconnected"] == [0] and d["failed_trainings"] == 1 and [s["worker"] for s in d["stopped"]] == [1]
    assert d["silent"] == [] and "stopped_at" not in d and outage.recovery_s == pytest.approx(2.0)
    assert kill.detail["candidate"] == 5 and kill.detail["training_lost_s"] == pytest.approx(0.5)
    assert kill.recovery_s == pytest.approx(6.5) and kill.detail["replacement_first_training_s"] == pytest.approx(6.0)
    summary = fault_summary([outage, kill])
    assert summary["sigkill"]["count"] == 1 and summary["sigkill"]["in_flight"] == 1
    assert summary["postgres_restart"]["count"] == 1 and summary["disk_full"]["count"] == 0


# ----------------------------------------------------------------------------- schedule and loop
def test_fault_plan_is_seeded_bounded_and_ordered():
    plan = FaultPlan(kill_every=(2.0, 5.0), outage_at=0.3, disk_at=0.6, seed=4)
    gaps = plan.kill_gaps()
    first = [next(gaps) for _ in range(50)]
    again = FaultPlan(kill_every=(2.0, 5.0), seed=4).kill_gaps()
    assert first == [next(again) for _ in range(50)] and all(2.0 <= g <= 5.0 for g in first)
    assert first != [next(FaultPlan(seed=5).kill_gaps()) for _ in range(50)]
    assert not plan.due("postgres_restart", 299, 1000) and plan.due("postgres_restart", 300, 1000)
    assert not plan.due("disk_full", 599, 1000) and plan.due("disk_full", 600, 1000)
    for bad in ({"kill_every": (0.0, 1.0)}, {"kill_every": (3.0, 2.0)}, {"outage_at": 1.0}):
        with pytest.raises(ValueError):
            FaultPlan(**bad)


def test_line_tail_keeps_a_partial_line_until_it_is_complete(tmp_path):
    path = tmp_path / "log"
    tail = LineTail(path)
    assert tail.read(0.0) == []
    path.write_bytes(b"one\ntw")
    assert tail.read(1.0) == ["one"]
    with open(path, "ab") as f:
        f.write(b"o\nthree\n")
    assert tail.read(2.0) == ["two", "three"] and tail.lines == [(1.0, "one"), (2.0, "two"), (2.0, "three")]


FAKE_WORKER = textwrap.dedent("""
    import json, os, sys, time
    trace = sys.argv[1]
    me = "h:%d:x" % os.getpid()
    while True:
        with open(trace) as f:
            done = sum('"done"' in line for line in f)
        if done >= 100:
            print("finished"); sys.exit(0)
        with open(trace, "a") as f:
            f.write(json.dumps({"event": "done", "candidate": done, "worker": me, "time": time.time()}) + "\\n")
        time.sleep(0.05)
""")


class FakeServer:
    def __init__(self):
        self.calls = []

    def stop(self, mode):
        self.calls.append(("stop", mode, time.time()))

    def start(self):
        self.calls.append(("start", time.time()))


def test_the_fault_loop_kills_replaces_restarts_and_finishes(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.touch()
    (tmp_path / "fake.py").write_text(FAKE_WORKER)
    pool = WorkerPool([sys.executable, str(tmp_path / "fake.py"), str(trace)], tmp_path / "logs")
    plan = FaultPlan(kill_every=(0.3, 0.5), outage_at=0.2, outage_seconds=0.4, disk_at=0.5, seed=1)
    server = FakeServer()
    record = FaultyRun(pool, plan, server, None, trace, expected=100, n=3, tick=0.05, timeout=60,
                       log=lambda _: None).run()
    assert record.finished and not pool.alive()
    kills = [f for f in record.faults if f.kind == "sigkill"]
    assert kills and all(pool.workers[f.workers_affected[0]].killed for f in kills)
    assert all(pool.workers[f.detail["replacement"]].started >= record.started for f in kills)
    assert [c[0] for c in server.calls] == ["stop", "start"]
    outage = next(f for f in record.faults if f.kind == "postgres_restart")
    assert 0.4 <= outage.duration_s < 5 and outage.detail["done_before"] >= 20
    disk = next(f for f in record.faults if f.kind == "disk_full")
    assert "not_injected" in disk.detail          # no file system given: said, not imitated
    assert any(w.proc.returncode == 0 for w in pool.workers)


def test_small_fs_fills_up_and_frees(tmp_path):
    fs = SmallFs(tmp_path / "fs", size_mb=2, inodes=256)
    try:
        fs.mount()
    except MountError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        (fs.path / "study").mkdir()
        filled = fs.fill()
        assert filled["filled_bytes"] > 1_000_000 and filled["filled_inodes"] > 200
        with pytest.raises(OSError, match="No space left"):
            (fs.path / "study" / "00000001").mkdir()
        fs.free()
        (fs.path / "study" / "00000001").mkdir()
    finally:
        fs.unmount()


# ----------------------------------------------------------------------------- a real restart
@pytest.fixture(scope="module")
def server():
    from pop.pg_local import PostgresUnavailable, start_local
    root = Path(tempfile.mkdtemp(prefix="pop-restart-"))
    root.chmod(0o755)
    try:
        srv = start_local(root / "server", log=lambda _: None)
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    yield srv
    srv.close()
    subprocess.run(["rm", "-rf", str(root)])


def test_workers_ride_out_a_postgresql_restart(server, tmp_path):
    password = "Rst-8x-secret"
    host = server.add_role("restart", password, "restartdb")
    url = f"postgresql://restart:{password}@{host}/restartdb"
    create_study(url, "r", _spec(lease_timeout=3.0, delay=0.2))
    trace = tmp_path / "trace.jsonl"
    cmd = [sys.executable, "-m", "pop", "worker", "--storage", url, "--study", "r", "--quiet", "--poll", "0.1",
           "--trace", str(trace), "--workdir", str(tmp_path / "runs")]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1")) for _ in range(2)]
    deadline = time.time() + 120
    while len(read_trace(trace)) < 10 and time.time() < deadline:
        time.sleep(0.1)
    server.stop("fast")
    time.sleep(3)
    server.start()
    outs = [w.communicate(timeout=300)[0] for w in workers]
    for w, out in zip(workers, outs):
        assert w.returncode == 0, out
        assert "Traceback" not in out and password not in out
        assert out.count("reconnected") == 1, out
    acc, replay = account(url, "r", read_trace(trace), tmp_path / "runs")
    assert (acc.duplicated, acc.lost) == (0, 0) and acc.finished
    create_study(url, "one", _spec(lease_timeout=3.0))
    one = run_worker(url, "one", Surrogate(seed=3), workdir=tmp_path / "one", poll=0.05, progress=False)
    assert one.state.boundary == replay.state.boundary and one.state.D == replay.state.D
    assert password not in json.dumps(acc.to_json())
