"""Algorithm 1 on an Optuna study: one process on SQLite, or many workers on PostgreSQL.

Every trained candidate is a trial of a two-objective study (latency ↓, accuracy ↑).  The
search state is *derived*, never stored: a worker rebuilds Ŝ from the study's attributes
(space config + latency table) and replays the completed trials through Algorithm 1 in the
seeded sampling order (``pop.algorithm``), so D, P and the boundary are recomputed from the
database and a crash loses nothing.

Concurrency.  Optuna has no "claim this candidate" primitive, and its heartbeat only covers
``study.optimize``, so claims live in a small lease table next to Optuna's tables:

* ``pop_leases(study, candidate)`` is a primary key: inserting the row claims the candidate,
  a second insert fails — no candidate is trained twice concurrently;
* the owner refreshes ``heartbeat`` (database clock) while training; a lease whose heartbeat
  is older than the liveness timeout may be taken over by one conditional UPDATE, and the
  dead owner's trial is marked FAIL — a killed worker's candidate is offered again;
* before reporting, the owner re-asserts the lease; a worker that lost its lease discards its
  result, and candidates that already have a COMPLETE trial are never claimed again.

Workers claim the first candidate of the sampling order that is neither pruned, trained nor
claimed (speculating that the candidates before it will not prune it).  Algorithm 1 consumes
results strictly in sampling order, so the run is the single-worker run whatever the timing;
a speculative result whose candidate ends up pruned stays in the study (marked ``used=False``
in reports) but is not part of D.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from .evaluators import Evaluator
from .lut import LatencyTable
from .noise_aware import pruning_state
from .space import Space, SpaceConfig

ATTR = "pop"
optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyError(RuntimeError):
    pass


def _sqlite_pragmas(engine: sa.engine.Engine) -> None:
    """WAL journal, no fsync per commit: a killed process loses nothing committed (only a
    power cut could), and a trial costs milliseconds instead of a dozen disk flushes."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()


# Two processes creating the same schema at once: one wins, the other sees a duplicate key
# (alembic_version on SQLite, pg_type on PostgreSQL) although the schema is now there. A
# second try then finds the tables and goes on.
_CREATE_RACE = ("alembic_version", "already exists", "duplicate key", "UNIQUE constraint", "IntegrityError",
                "database is locked")
_CREATE_TRIES = 6


def _lost_create_race(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    cause = err.__cause__ or err.__context__
    return any(m in text for m in _CREATE_RACE) or (cause is not None and _lost_create_race(cause))


def _retry_create(create, what: str):
    for attempt in range(_CREATE_TRIES):
        try:
            return create()
        except Exception as e:
            if attempt == _CREATE_TRIES - 1 or not _lost_create_race(e):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError(what)  # not reached


def open_storage(url: str) -> optuna.storages.RDBStorage:
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        storage = _retry_create(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs), url)
    except Exception as e:  # optuna wraps driver errors in many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"storage {url!r}: cannot open ({msg})")
    _sqlite_pragmas(storage.engine)
    return storage


# ----------------------------------------------------------------------------- search spec
@dataclass
class SearchSpec:
    """What a study searches; stored as the study's user attribute ``pop``."""

    space: dict                 # SpaceConfig.to_dict() or a decoder space description
    lut: dict                   # LatencyTable.to_json()
    seed: int
    patience: int               # K
    budget: int | None = None   # optional cap on |D|
    evaluator: str = "surrogate"
    lease_timeout: float = 60.0
    rule: str = "pop"               # pruning rule: "pop" (Algorithm 1) or "noise-aware"
    margin_quantile: float = 0.9    # noise-aware rule: quantile of trained-pair violations

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @staticmethod
    def from_json(data: dict) -> "SearchSpec":
        return SearchSpec(**data)

    def build_space(self):
        from .decoder import DecoderSpace, is_decoder_space
        table = LatencyTable.from_json(self.lut, "study LUT")
        if is_decoder_space(self.space):
            return DecoderSpace.from_dict(self.space, table)
        return Space.enumerate(SpaceConfig.from_dict(self.space), table)


def create_study(storage_url: str, name: str, spec: SearchSpec) -> optuna.Study:
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name=name, directions=["minimize", "maximize"],
                                load_if_exists=True)
    existing = study.user_attrs.get(ATTR)
    if existing is None:
        study.set_user_attr(ATTR, spec.to_json())
    elif (existing := SearchSpec.from_json(existing).to_json()) != spec.to_json():  # (fills newer fields)
        changed = sorted(k for k in spec.to_json() if existing.get(k) != spec.to_json()[k])
        raise StudyError(f"study {name!r} exists with different settings ({', '.join(changed)}); "
                         "use another --study name or `pop worker` to continue it")
    return study


def load_study(storage_url: str, name: str) -> tuple[optuna.Study, SearchSpec]:
    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyError(f"storage {storage_url!r} has no study {name!r} (start it with `pop search`)")
    data = study.user_attrs.get(ATTR)
    if data is None:
        raise StudyError(f"study {name!r} is not a POP study (no '{ATTR}' attribute)")
    return study, SearchSpec.from_json(data)


# ----------------------------------------------------------------------------- leases
def _now_sql(dialect: str) -> str:
    if dialect == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    if dialect == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    raise StudyError(f"storage dialect {dialect!r} not supported (use sqlite or postgresql)")


class Leases:
    """Claims on candidates, with liveness (heartbeat on the database clock)."""

    def __init__(self, url: str, study: str, timeout: float):
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = sa.create_engine(url, **kwargs)
        _sqlite_pragmas(self.engine)
        self.study = study
        self.timeout = float(timeout)
        self.now = _now_sql(self.engine.dialect.name)
        _retry_create(self._create_table, "pop_leases")

    def _create_table(self) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS pop_leases (study VARCHAR(512) NOT NULL, candidate INTEGER NOT NULL, "
                "worker VARCHAR(256) NOT NULL, trial_id INTEGER, heartbeat DOUBLE PRECISION NOT NULL, "
                "state VARCHAR(16) NOT NULL, PRIMARY KEY (study, candidate))"))

    def live(self) -> dict[int, str]:
        """candidate -> state for leases that block a claim (fresh 'running', or 'done')."""
        with self.engine.begin() as c:
            rows = c.execute(sa.text(
                f"SELECT candidate, state FROM pop_leases WHERE study = :s AND "
                f"(state = 'done' OR heartbeat >= {self.now} - :t)"), {"s": self.study, "t": self.timeout})
            return {int(r[0]): r[1] for r in rows}

    def claim(self, candidate: int, worker: str) -> tuple[bool, int | None]:
        """Claim `candidate`; returns (claimed, trial id of a dead owner to mark failed)."""
        with self.engine.begin() as c:
            try:
                with c.begin_nested():
                    c.execute(sa.text(
                        f"INSERT INTO pop_leases (study, candidate, worker, trial_id, heartbeat, state) "
                        f"VALUES (:s, :c, :w, NULL, {self.now}, 'running')"),
                        {"s": self.study, "c": candidate, "w": worker})
                return True, None
            except sa.exc.IntegrityError:
                pass
            old = c.execute(sa.text(
                f"SELECT trial_id FROM pop_leases WHERE study = :s AND candidate = :c AND state = 'running' "
                f"AND heartbeat < {self.now} - :t"), {"s": self.study, "c": candidate, "t": self.timeout}).first()
            if old is None:
                return False, None
            taken = c.execute(sa.text(
                f"UPDATE pop_leases SET worker = :w, trial_id = NULL, heartbeat = {self.now} "
                f"WHERE study = :s AND candidate = :c AND state = 'running' AND heartbeat < {self.now} - :t"),
                {"s": self.study, "c": candidate, "w": worker, "t": self.timeout}).rowcount
            return taken == 1, (old[0] if taken == 1 else None)

    def attach_trial(self, candidate: int, worker: str, trial_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE pop_leases SET trial_id = :i WHERE study = :s AND candidate = :c AND worker = :w"),
                      {"i": trial_id, "s": self.study, "c": candidate, "w": worker})

    def heartbeat(self, candidate: int, worker: str) -> bool:
        """Refresh; False when the lease is no longer ours (taken over after a stall)."""
        with self.engine.begin() as c:
            return c.execute(sa.text(
                f"UPDATE pop_leases SET heartbeat = {self.now} WHERE study = :s AND candidate = :c "
                f"AND worker = :w AND state = 'running'"), {"s": self.study, "c": candidate, "w": worker}).rowcount == 1

    def finish(self, candidate: int, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE pop_leases SET state = 'done' WHERE study = :s AND candidate = :c AND worker = :w"),
                      {"s": self.study, "c": candidate, "w": worker})

    def release(self, candidate: int, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("DELETE FROM pop_leases WHERE study = :s AND candidate = :c AND worker = :w "
                              "AND state = 'running'"), {"s": self.study, "c": candidate, "w": worker})


class _Heartbeat(threading.Thread):
    def __init__(self, leases: Leases, candidate: int, worker: str, interval: float):
        super().__init__(daemon=True)
        self.leases, self.candidate, self.worker, self.interval = leases, candidate, worker, interval
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                if not self.leases.heartbeat(self.candidate, self.worker):
                    self.lost = True
                    return
            except sa.exc.SQLAlchemyError:
                continue  # a database hiccup: try again next beat (the timeout allows several misses)


# ----------------------------------------------------------------------------- replay
def completed_results(study: optuna.Study) -> dict[int, float]:
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        c = t.user_attrs.get("candidate")
        if c is not None:
            out[int(c)] = float(t.values[1])
    return out


class Replay:
    """Algorithm 1 state rebuilt from completed trials, consumed in sampling order."""

    def __init__(self, space, spec: SearchSpec):
        self.space = space
        self.state = pruning_state(spec.rule, space.order_keys(), space.latency, spec.seed, spec.patience,
                                   spec.margin_quantile)
        self.budget = spec.budget

    def advance(self, results: dict[int, float]) -> None:
        while not self.done:
            x = self.state.next_candidate()
            if x is None or x not in results:
                return
            self.state.add(x, results[x])

    @property
    def done(self) -> bool:
        return self.state.finished or (self.budget is not None and len(self.state.D) >= self.budget)


# ----------------------------------------------------------------------------- worker
def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_worker(*args, **kwargs) -> "Replay":
    """Train candidates of a study until Algorithm 1 stops; returns the final replay."""
    try:
        return _run_worker(*args, **kwargs)
    except sa.exc.OperationalError as e:
        first = str(e.orig).strip().splitlines()[0] if getattr(e, "orig", None) else type(e).__name__
        raise StudyError(f"storage: lost the database ({first}); completed trials are kept, "
                         "a claimed candidate is offered again after the lease timeout")


def _run_worker(storage_url: str, study_name: str, evaluator: Evaluator | None = None,
               workdir: pathlib.Path = pathlib.Path("pop_runs"), poll: float = 1.0,
               heartbeat: float | None = None, trace: pathlib.Path | None = None,
               max_failures: int = 3, progress: bool = True, log=print) -> Replay:
    from tqdm import tqdm

    from .evaluators import make_evaluator

    study, spec = load_study(storage_url, study_name)
    evaluator = evaluator or make_evaluator(spec.evaluator)
    space = spec.build_space()
    replay = Replay(space, spec)
    leases = Leases(storage_url, study_name, spec.lease_timeout)
    me = worker_id()
    beat = heartbeat if heartbeat is not None else max(spec.lease_timeout / 5.0, 0.05)
    failures = 0
    bar = tqdm(desc=f"POP {study_name}", unit="trained", disable=not progress)

    def note(event: str, candidate: int) -> None:
        if trace is not None:
            with open(trace, "a") as f:  # O_APPEND: whole lines from concurrent workers
                f.write(json.dumps({"event": event, "candidate": candidate, "worker": me, "time": time.time()}) + "\n")

    while True:
        results = completed_results(study)
        replay.advance(results)
        st = replay.state
        bar.n = len(st.D)
        bar.set_postfix(pruned=st.pruned_not_trained, boundary=len(st.boundary), unchanged=st.unchanged)
        bar.refresh()
        if replay.done:
            break
        blocked = set(results) | set(leases.live())
        claimed = None
        for cand in st.candidates(exclude=blocked):
            ok, dead_trial = leases.claim(cand, me)
            if ok:
                if dead_trial is not None:
                    with contextlib.suppress(Exception):
                        study._storage.set_trial_state_values(dead_trial, TrialState.FAIL)
                if cand in completed_results(study):  # finished between our read and claim
                    leases.finish(cand, me)
                    continue
                claimed = cand
                break
        if claimed is None:
            time.sleep(poll)  # everything claimable is leased: wait for results or expiries
            continue
        encoding = space.encoding(claimed)
        trial = study.ask()
        trial.set_user_attr("candidate", claimed)
        trial.set_user_attr("encoding", encoding)
        trial.set_user_attr("worker", me)
        leases.attach_trial(claimed, me, trial._trial_id)
        hb = _Heartbeat(leases, claimed, me, beat)
        hb.start()
        note("start", claimed)
        try:
            run_dir = pathlib.Path(workdir) / study_name / f"{claimed:08d}"
            run_dir.mkdir(parents=True, exist_ok=True)
            accuracy = float(evaluator.evaluate(encoding, run_dir))
            if not 0.0 <= accuracy <= 1.0:
                raise ValueError(f"accuracy {accuracy} outside [0, 1]")
        except KeyboardInterrupt:
            # stopped by hand: give the candidate back now instead of after the lease timeout
            hb.stop.set()
            study.tell(trial, state=TrialState.FAIL)
            leases.release(claimed, me)
            raise
        except Exception as e:
            hb.stop.set()
            hb.join()
            study.tell(trial, state=TrialState.FAIL)
            leases.release(claimed, me)
            failures += 1
            log(f"pop worker: training {encoding} failed: {e}")
            if failures >= max_failures:
                raise StudyError(f"{failures} trainings failed in a row; last: {e}")
            continue
        hb.stop.set()
        hb.join()
        failures = 0
        if hb.lost or not leases.heartbeat(claimed, me):
            study.tell(trial, state=TrialState.FAIL)  # someone took over: their result counts
            note("lost", claimed)
            continue
        study.tell(trial, values=[float(space.latency[claimed]), accuracy])
        leases.finish(claimed, me)
        note("done", claimed)
    bar.close()
    return replay


def final_state(storage_url: str, study_name: str) -> tuple[Replay, optuna.Study, SearchSpec]:
    study, spec = load_study(storage_url, study_name)
    replay = Replay(spec.build_space(), spec)
    replay.advance(completed_results(study))
    return replay, study, spec
