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

import json
import os
import pathlib
import socket
import time
import uuid
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from dfseg.base.secrets import mask_url, mask_urls_in

from .decoder import DecoderSpace, is_decoder_space
from .evaluators import Evaluator, stored_evaluator
from .leases import Leases, _Heartbeat
from .reconnect import DEFAULT_WINDOW, OrphanReaper, Reconnect, first_line, is_transient
from .storage import StudyError, open_storage
from .lut import LatencyTable
from .noise_aware import pruning_state
from .space import Space, SpaceConfig

ATTR = "pop"
optuna.logging.set_verbosity(optuna.logging.WARNING)


# The layout of the ``pop`` attribute.  1: the fields below, no "version" key (every release
# before the key existed; fields added since then take their defaults); 2: the same fields and
# "version": 2.  A study of a version above SPEC_VERSION comes from a newer dfseg: refused.
SPEC_VERSION = 2


class SpecVersionError(StudyError):
    """The study's search spec is of a layout this dfseg cannot read; the message says which."""


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
    sampling: str = "uniform"       # where the next model is drawn: "uniform" or "boundary" (pop.sampling)
    local_share: float = 0.5        # boundary sampling: share of draws next to the boundary

    def to_json(self) -> dict:
        return {**self.__dict__, "version": SPEC_VERSION}

    @staticmethod
    def from_json(data: dict, where: str = "study") -> "SearchSpec":
        """Read a stored spec of any version up to SPEC_VERSION (no "version": version 1);
        a newer or malformed one is one line naming ``where`` and the version."""
        if not isinstance(data, dict):
            raise SpecVersionError(f"{where}: the '{ATTR}' attribute is not a search spec")
        data = dict(data)
        version = data.pop("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SPEC_VERSION:
            newer = isinstance(version, int) and version > SPEC_VERSION
            raise SpecVersionError(f"{where}: search spec version {version!r} is not one this dfseg reads "
                                   f"(1 to {SPEC_VERSION})" + ("; it was written by a newer dfseg: upgrade dfseg "
                                                               "here" if newer else ""))
        known = set(SearchSpec.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        missing = sorted(k for k in ("space", "lut", "seed", "patience") if k not in data)
        if unknown or missing:
            what = "; ".join(f"{label} {', '.join(map(str, keys))}" for label, keys in
                             (("unknown fields", unknown), ("missing fields", missing)) if keys)
            raise SpecVersionError(f"{where}: search spec version {version} has {what} "
                                   "(written by another dfseg?)")
        return SearchSpec(**data)

    def build_space(self):
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
    elif (existing := SearchSpec.from_json(existing, f"study {name!r}").to_json()) != spec.to_json():  # (fills newer fields)
        changed = sorted(k for k in spec.to_json() if existing.get(k) != spec.to_json()[k])
        raise StudyError(f"study {name!r} exists with different settings ({', '.join(changed)}); "
                         "use another --study name or `pop worker` to continue it")
    return study


def load_study(storage_url: str, name: str) -> tuple[optuna.Study, SearchSpec]:
    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyError(f"storage {mask_url(storage_url)!r} has no study {name!r} (start it with `pop search`)")
    data = study.user_attrs.get(ATTR)
    if data is None:
        raise StudyError(f"study {name!r} is not a POP study (no '{ATTR}' attribute)")
    return study, SearchSpec.from_json(data, f"study {name!r}")


# ----------------------------------------------------------------------------- leases
def completed_results(study: optuna.Study) -> dict[int, float]:
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        c = t.user_attrs.get("candidate")
        if c is not None:
            out[int(c)] = float(t.values[1])
    return out


def settled_results(study: optuna.Study) -> dict[int, float]:
    """Completed results in trial order, up to the first trial still running: what every
    replay of the study consumes.  A result that finished after a later-numbered one is seen
    at once by a replay that reads the study later, but only after it by a worker that read
    in between; cut at the first running trial, each read is a prefix of every later read,
    so a worker's replay and the final one consume the same results in the same order."""
    out = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            break
        c = t.user_attrs.get("candidate")
        if t.state == TrialState.COMPLETE and c is not None:
            out[int(c)] = float(t.values[1])
    return out


class Replay:
    """Algorithm 1 state rebuilt from completed trials, consumed in sampling order."""

    def __init__(self, space, spec: SearchSpec):
        self.space = space
        self.state = pruning_state(spec.rule, space.order_keys(), space.latency, spec.seed, spec.patience,
                                   spec.margin_quantile, sampling=spec.sampling, local_share=spec.local_share)
        self.budget = spec.budget

    def advance(self, results: dict[int, float]) -> None:
        """Consume `results` (candidate -> accuracy, in trial order: `settled_results`).  With
        uniform sampling in sampling order, each draw waiting for its result.  With boundary
        sampling a speculative result (trained by another worker from an earlier state) is
        rarely the next draw of a later state, so every result still in Ŝ \\ (P ∪ D) is
        consumed in trial order, one per draw: no training is wasted, and the order depends on
        the trials alone, not on when a worker happened to read them."""
        while not self.done:
            x = self.state.next_candidate()
            if x is None:
                return
            if self.state.sampling != "uniform":
                x = next((c for c in results if not (self.state.trained[c] or self.state.pruned[c])), None)
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
    """Train candidates of a study until Algorithm 1 stops; returns the final replay.  A lost
    database is waited for (``reconnect`` seconds, pop.reconnect), then one line."""
    try:
        return _run_worker(*args, **kwargs)
    except Exception as e:
        if not is_transient(e):
            raise
        raise StudyError(f"storage: lost the database ({first_line(e)}); completed trials are kept, "
                         "a claimed candidate is offered again after the lease timeout") from None


def _fail_trial(study, number: int, rc: Reconnect) -> None:
    """Tell trial `number` FAIL unless it already finished (a dead owner's, or an orphan)."""
    try:
        rc.call(study.tell, number, state=TrialState.FAIL)
    except StudyError:
        raise
    except (ValueError, RuntimeError):   # already finished (or told by someone else meanwhile)
        pass


def _claim_next(study, replay: Replay, leases: "Leases", me: str, results: dict, rc: Reconnect) -> int | None:
    """The first candidate of the current state nobody trains (a dead owner's trial is told
    FAIL, by its public trial number); None when all are claimed."""
    blocked = set(results) | set(rc.call(leases.live))
    for cand in replay.state.candidates(exclude=blocked):
        ok, dead_trial = rc.call(leases.claim, cand, me)
        if not ok:
            continue
        if dead_trial is not None:
            _fail_trial(study, dead_trial, rc)
        if cand in rc.call(completed_results, study):  # finished between our read and claim
            rc.call(leases.finish, cand, me)
            continue
        return cand
    return None


def _reap_orphans(study, leases: "Leases", reaper: OrphanReaper, rc: Reconnect) -> None:
    """Fail RUNNING trials no live lease has owned for a lease timeout (pop.reconnect): else
    the replay, which stops at the first RUNNING trial, would wait for them for ever."""
    running = {t.number for t in rc.call(study.get_trials, deepcopy=False, states=(TrialState.RUNNING,))}
    if running:
        for number in reaper.due(running, rc.call(leases.owned_trials), rc.outages):
            _fail_trial(study, number, rc)


def _open_trial(study, leases: "Leases", claimed: int, encoding: str, me: str, rc: Reconnect):
    trial = rc.call(study.ask)
    for key, value in (("candidate", claimed), ("encoding", encoding), ("worker", me)):
        rc.call(trial.set_user_attr, key, value)
    rc.call(leases.attach_trial, claimed, me, trial.number)
    return trial


def _record(study, leases: "Leases", claimed: int, encoding: str, me: str, trial, values: list[float],
            rc: Reconnect) -> bool:
    """Tell the result while the lease is still ours; False when it is not (someone took over
    after a stall: their result counts).  A tell run again after its reply was lost finds its
    trial COMPLETE; a trial failed by another worker's OrphanReaper (we were slow to attach,
    or out of reach) gets the result on a new trial: nothing computed is lost."""
    for _ in range(3):
        if not rc.call(leases.heartbeat, claimed, me) or claimed in rc.call(completed_results, study):
            _fail_trial(study, trial.number, rc)
            return False
        try:
            rc.call(study.tell, trial, values=values)
            return True
        except StudyError:
            raise
        except (ValueError, RuntimeError):
            mine = [t for t in rc.call(study.get_trials, deepcopy=False) if t.number == trial.number]
            if mine and mine[0].state == TrialState.COMPLETE:
                return True
            trial = _open_trial(study, leases, claimed, encoding, me, rc)
    raise StudyError(f"candidate {claimed}: its trial was failed by other workers three times; "
                     "is --lease-timeout far shorter than a database round trip?")


def _train_claimed(study, space, evaluator, leases: "Leases", claimed: int, me: str, beat: float,
                   workdir: pathlib.Path, study_name: str, note, rc: Reconnect) -> str:
    """Train one claimed candidate under a heartbeat; "done", "lost" (taken over after a stall)
    or raises the training's exception (the trial told FAIL and the lease given back)."""
    encoding = space.encoding(claimed)
    trial = _open_trial(study, leases, claimed, encoding, me, rc)
    hb = _Heartbeat(leases, claimed, me, beat)
    hb.start()
    note("start", claimed)
    try:
        run_dir = pathlib.Path(workdir) / study_name / f"{claimed:08d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        accuracy = float(evaluator.evaluate(encoding, run_dir))
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy {accuracy} outside [0, 1]")
    except BaseException as e:
        # stopped by hand or failed: give the candidate back now, not after the lease timeout
        hb.stop.set()
        hb.join()
        try:
            _fail_trial(study, trial.number, rc)
            rc.call(leases.release, claimed, me)
        except Exception:
            if isinstance(e, Exception):
                raise
        raise   # Ctrl-C stays Ctrl-C, whatever giving back met
    hb.stop.set()
    hb.join()
    if hb.lost or not _record(study, leases, claimed, encoding, me, trial,
                              [float(space.latency[claimed]), accuracy], rc):
        note("lost", claimed)
        return "lost"
    rc.call(leases.finish, claimed, me)
    note("done", claimed)
    return "done"


def _run_worker(storage_url: str, study_name: str, evaluator: Evaluator | None = None,
               workdir: pathlib.Path = pathlib.Path("pop_runs"), poll: float = 1.0,
               heartbeat: float | None = None, trace: pathlib.Path | None = None,
               max_failures: int = 3, progress: bool = True, log=print,
               reconnect: float = DEFAULT_WINDOW) -> Replay:
    study, spec = load_study(storage_url, study_name)
    evaluator = evaluator or stored_evaluator(spec.evaluator, study_name)   # only the package's own
    space = spec.build_space()
    replay = Replay(space, spec)
    leases = Leases(storage_url, study_name, spec.lease_timeout)
    me = worker_id()
    beat = heartbeat if heartbeat is not None else max(spec.lease_timeout / 5.0, 0.05)
    rc, reaper = Reconnect(reconnect, log), OrphanReaper(spec.lease_timeout)
    failures, next_reap = 0, 0.0
    bar = tqdm(desc=f"POP {study_name}", unit="trained", disable=not progress)

    def note(event: str, candidate: int) -> None:
        if trace is not None:
            with open(trace, "a") as f:  # O_APPEND: whole lines from concurrent workers
                f.write(json.dumps({"event": event, "candidate": candidate, "worker": me, "time": time.time()}) + "\n")

    while True:
        results = rc.call(completed_results, study)
        replay.advance(rc.call(settled_results, study))
        st = replay.state
        bar.n = len(st.D)
        bar.set_postfix(pruned=st.pruned_not_trained, boundary=len(st.boundary), unchanged=st.unchanged)
        bar.refresh()
        if replay.done:
            break
        if time.monotonic() >= next_reap:
            _reap_orphans(study, leases, reaper, rc)
            next_reap = time.monotonic() + min(1.0, spec.lease_timeout / 4)
        claimed = _claim_next(study, replay, leases, me, results, rc)
        if claimed is None:
            time.sleep(poll)  # everything claimable is leased: wait for results or expiries
            continue
        try:
            _train_claimed(study, space, evaluator, leases, claimed, me, beat, workdir, study_name, note, rc)
            failures = 0
        except StudyError:
            raise
        except Exception as e:
            failures += 1
            log(f"pop worker: training {space.encoding(claimed)} failed: {mask_urls_in(str(e))}")
            if failures >= max_failures:
                raise StudyError(f"{failures} trainings failed in a row; last: {mask_urls_in(str(e))}")
    bar.close()
    return replay


def final_state(storage_url: str, study_name: str) -> tuple[Replay, optuna.Study, SearchSpec]:
    study, spec = load_study(storage_url, study_name)
    replay = Replay(spec.build_space(), spec)
    replay.advance(settled_results(study))
    return replay, study, spec
