"""What the distributed benchmark reads back after a run: was every candidate trained exactly
once, is the result the one-worker result, and did the password stay out of every output.

Exactly once is read from four places that must agree:

* the study's trials: each candidate has at most one COMPLETE trial (more: ``duplicated``);
* the workers' trace: a candidate a worker reported ``done`` has a COMPLETE trial;
* the lease table: a lease in state ``done`` has a COMPLETE trial;
* the final replay: every model Algorithm 1 used (D) has a COMPLETE trial;

a candidate missing from the trials in any of them is ``lost``.  Each COMPLETE candidate must
also have its directory in the work dir (the training ran there: ``without_workdir``).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa
from optuna.trial import TrialState

from .bench_monitor import event_pid
from .storage_url import resolve_storage_url
from .study import Replay, final_state


@dataclass
class Accounting:
    trainings: int            # COMPLETE trials
    candidates: int           # distinct candidates among them
    duplicated: int           # COMPLETE trials beyond one per candidate
    lost: int                 # candidates reported or used as trained without a COMPLETE trial
    lost_candidates: list[int]
    failed_trials: int        # FAIL: killed, taken over, disk full, orphans
    running_left: int         # RUNNING at the end (a worker killed after the search's last result)
    used: int                 # |D|: the results Algorithm 1 consumed
    finished: bool            # the replay of the study has stopped (Algorithm 1 is done)
    without_workdir: int      # COMPLETE candidates with no directory in the work dir

    def to_json(self) -> dict:
        return asdict(self)


def read_trace(path: Path) -> list[dict]:
    """The JSON lines of a ``pop worker --trace`` file (lines that do not parse are skipped)."""
    events = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def lease_states(url: str, study: str) -> dict[int, str]:
    engine = sa.create_engine(resolve_storage_url(url))
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT candidate, state FROM pop_leases WHERE study = :s"), {"s": study})
            return {int(r[0]): r[1] for r in rows}
    finally:
        engine.dispose()


def account(url: str, study_name: str, events: list[dict], workdir: Path | None) -> tuple[Accounting, Replay]:
    replay, study, _ = final_state(url, study_name)
    trials = study.get_trials(deepcopy=False)
    complete = Counter(int(t.user_attrs["candidate"]) for t in trials
                       if t.state == TrialState.COMPLETE and "candidate" in t.user_attrs)
    reported = {int(e["candidate"]) for e in events if e.get("event") == "done"}
    leased = {c for c, state in lease_states(url, study_name).items() if state == "done"}
    lost = sorted((reported | leased | set(replay.state.D)) - set(complete))
    ran = set()
    if workdir is not None and (Path(workdir) / study_name).is_dir():
        ran = {int(p.name) for p in (Path(workdir) / study_name).iterdir() if p.name.isdigit()}
    acc = Accounting(
        trainings=sum(complete.values()), candidates=len(complete),
        duplicated=sum(n - 1 for n in complete.values()), lost=len(lost), lost_candidates=lost[:20],
        failed_trials=sum(t.state == TrialState.FAIL for t in trials),
        running_left=sum(t.state == TrialState.RUNNING for t in trials), used=len(replay.state.D),
        finished=replay.done, without_workdir=len(set(complete) - ran) if workdir is not None else 0)
    return acc, replay


def same_search(a: Replay, b: Replay) -> dict:
    """Whether two replays of the same space and seed reached the same result."""
    x, y = a.state, b.state
    return {"boundary_equal": x.boundary == y.boundary, "D_equal": x.D == y.D,
            "pruned_equal": bool((x.pruned == y.pruned).all())}


def grep_secret(secret: str, roots: list[Path], texts: dict[str, str]) -> dict:
    """Every file under `roots` and every named text searched for `secret` (bytes, as grep
    would); returns how much was searched and where it was found."""
    needle = secret.encode()
    found, files = [], 0
    for root in roots:
        paths = [Path(root)] if Path(root).is_file() else sorted(Path(root).rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                files += 1
                if needle in path.read_bytes():
                    found.append(str(path))
    found += [name for name, text in texts.items() if secret in text]
    return {"files_searched": files, "texts_searched": len(texts), "found_in": found}


# ----------------------------------------------------------------------------- fault costs
TRAINING_FAILED = "pop worker: training "   # the line pop.study logs when an evaluation raised
def _first_done_after(events: list[dict], t: float) -> float | None:
    times = [e["time"] for e in events if e.get("event") == "done" and e["time"] > t]
    return min(times) - t if times else None


def _kill_cost(fault, workers: list, events: list[dict], t0: float) -> None:
    """In-flight candidate of the victim, the training time lost, until someone else finished
    it, and how long the replacement took to start training."""
    at = t0 + fault.at_s
    pid = fault.detail["pid"]
    mine = [e for e in events if event_pid(e) == pid and e["time"] <= at]
    last = mine[-1] if mine else None
    if last is not None and last["event"] == "start":
        c = last["candidate"]
        fault.detail.update(candidate=c, training_lost_s=round(at - last["time"], 3))
        redone = [e["time"] for e in events if e["candidate"] == c and e["event"] == "done" and e["time"] > at]
        fault.recovery_s = min(redone) - at if redone else None
        fault.detail["candidate_needed_again"] = bool(redone)
    else:
        fault.detail["candidate"] = None   # killed between trainings: nothing in flight
    new = workers[fault.detail["replacement"]]
    first = [e["time"] for e in events if event_pid(e) == new.pid]
    fault.detail["replacement_first_training_s"] = round(min(first) - new.started, 2) if first else None


def _window_cost(fault, start: float, end: float, workers: list, stops: list[dict], events: list[dict],
                 t0: float, grace: float) -> None:
    """What workers did between `start` and `end` + `grace`: reconnected, training failures,
    stops (and the one line each gave), leases lost to a takeover; recovery after `end`."""
    def inside(t: float) -> bool:
        return start <= t <= end + grace
    reconnected = sorted({w.index for w in workers for t, line in w.log.lines if inside(t) and "reconnected" in line})
    failed = {w.index: sum(inside(t) and line.startswith(TRAINING_FAILED) for t, line in w.log.lines)
              for w in workers}
    stopped = [s for s in stops if inside(t0 + s["at_s"])]
    fault.detail.update(
        reconnected=reconnected, stopped=stopped, failed_trainings=sum(failed.values()),
        leases_lost=sum(e["event"] == "lost" and inside(e["time"]) for e in events))
    # a worker there when it began must have said something: reconnected, or stopped, or it was killed
    gone = {s["worker"] for s in stopped} | {w.index for w in workers if w.killed and w.ended and w.ended >= start}
    fault.detail["silent"] = sorted(set(fault.workers_affected) - set(reconnected) - gone
                                    - {i for i, n in failed.items() if n})
    fault.workers_affected = sorted(set(fault.workers_affected) | set(reconnected) |
                                    {s["worker"] for s in stopped} | {i for i, n in failed.items() if n})
    fault.recovery_s = _first_done_after(events, end)


def fault_costs(run, workers: list, lease_timeout: float) -> None:
    """Fill in each fault's cost from the trace and the workers' logs (times made relative)."""
    t0 = run.started
    grace = 2 * lease_timeout + 10.0   # stops and takeovers that follow the fault
    for f in run.faults:
        if f.kind == "sigkill":
            _kill_cost(f, workers, run.events, t0)
        elif f.kind == "postgres_restart" and "restarted_at" in f.detail:
            start, end = f.detail.pop("stopped_at"), f.detail.pop("restarted_at")
            _window_cost(f, start, end, workers, run.stops, run.events, t0, grace)
        elif f.kind == "disk_full" and "filled_at" in f.detail:
            start, end = f.detail.pop("filled_at"), f.detail.pop("freed_at")
            _window_cost(f, start, end, workers, run.stops, run.events, t0, grace)
        for key in ("stopped_at", "restarted_at", "filled_at", "freed_at"):
            f.detail.pop(key, None)


def fault_summary(faults: list) -> dict:
    """Per kind: how many, and the medians of what they cost."""
    def median(values):
        values = sorted(v for v in values if v is not None)
        return round(values[len(values) // 2], 2) if values else None
    kills = [f for f in faults if f.kind == "sigkill"]
    out = {"sigkill": {"count": len(kills), "in_flight": sum(f.detail.get("candidate") is not None for f in kills),
                       "training_lost_s": round(sum(f.detail.get("training_lost_s", 0.0) for f in kills), 2),
                       "waited_for_workers_s": round(sum(f.detail.get("waited_s", 0.0) for f in kills), 2),
                       "median_recovery_s": median(f.recovery_s for f in kills),
                       "median_replacement_first_training_s": median(
                           f.detail.get("replacement_first_training_s") for f in kills)}}
    for kind in ("postgres_restart", "disk_full"):
        out[kind] = {"count": sum(f.kind == kind and "not_injected" not in f.detail for f in faults)}
    return out
