"""A worker that rides out a lost database: retries, one line, and trials nobody trains any more.

A PostgreSQL restart, an upgrade or a failover ends every session at once; the workers of a
search should carry on when it is back, not die with a traceback and leave their candidates
leased.  Two pieces:

* :class:`Reconnect` runs a database call again while the error is a lost connection
  (:func:`is_transient`), for up to ``window`` seconds.  When the call goes through again it
  says so in one line (how long, and why); past the window it stops the worker with one line
  (:class:`~pop.storage.StudyError`).  Other errors pass through at once.
* :class:`OrphanReaper` finds RUNNING trials that no live lease owns for longer than the lease
  timeout, by this worker's own clock (other machines' clocks may be far off): a worker killed
  between ``study.ask()`` and attaching the trial to its lease, or an ``ask`` whose reply was
  lost, leaves one, and the replay (``pop.study.settled_results``) stops at the first RUNNING
  trial.  Such trials are told FAIL.  A live owner that was only slow then records its result
  on a new trial (``pop.study``), so nothing computed is lost.
"""
from __future__ import annotations

import time

import optuna
import sqlalchemy as sa

from dfseg.base.secrets import mask_urls_in

from .storage import StudyError

DEFAULT_WINDOW = 300.0     # seconds a worker waits for its database before it stops
_BACKOFF = (0.2, 0.5, 1.0, 2.0)


def is_transient(err: BaseException | None) -> bool:
    """A lost or refused connection (the server stopped, restarted or is unreachable), raised
    by SQLAlchemy directly or wrapped by Optuna (StorageInternalError from an OperationalError)."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return True
        if isinstance(err, sa.exc.DBAPIError) and err.connection_invalidated:
            return True
        if not isinstance(err, (optuna.exceptions.StorageInternalError, sa.exc.SQLAlchemyError)):
            return False
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def first_line(err: BaseException) -> str:
    """The driver's own first line (Optuna's wrapper says only "during the commit"), masked."""
    inner = err
    while isinstance(inner, optuna.exceptions.StorageInternalError) and (inner.__cause__ or inner.__context__):
        inner = inner.__cause__ or inner.__context__
    orig = getattr(inner, "orig", None) or inner
    text = str(orig).strip().splitlines()
    return mask_urls_in(text[0].strip() if text else type(orig).__name__)


class Reconnect:
    """Call database operations through :meth:`call`; see the module docstring."""

    def __init__(self, window: float = DEFAULT_WINDOW, log=print, sleep=time.sleep, clock=time.monotonic):
        self.window, self.log, self.sleep, self.clock = float(window), log, sleep, clock
        self.outages = 0                   # outages ridden out so far (OrphanReaper restarts its clocks)
        self.down_seconds = 0.0
        self._down_since: float | None = None
        self._why = ""

    def call(self, fn, *args, **kwargs):
        tries = 0
        while True:
            try:
                out = fn(*args, **kwargs)
            except Exception as e:
                if not is_transient(e):
                    raise
                self._failed(e, tries)
                tries += 1
                continue
            if self._down_since is not None:
                self._back()
            return out

    def _failed(self, err: BaseException, tries: int) -> None:
        now = self.clock()
        if self._down_since is None:
            self._down_since, self._why = now, first_line(err)
        if now - self._down_since > self.window:
            raise StudyError(f"storage: lost the database for {now - self._down_since:.0f} s ({self._why}); "
                             "completed trials are kept, a claimed candidate is offered again after the "
                             "lease timeout") from None
        self.sleep(_BACKOFF[min(tries, len(_BACKOFF) - 1)])

    def _back(self) -> None:
        took = self.clock() - self._down_since
        self.outages += 1
        self.down_seconds += took
        self.log(f"pop worker: database unreachable for {took:.1f} s ({self._why}); reconnected, nothing lost")
        self._down_since = None


class OrphanReaper:
    """Which RUNNING trials to tell FAIL: those no live lease has owned for ``timeout`` seconds
    of this worker's clock, counted afresh after each outage (nobody could heartbeat then)."""

    def __init__(self, timeout: float, clock=time.monotonic):
        self.timeout, self.clock = float(timeout), clock
        self._since: dict[int, float] = {}
        self._outages = 0

    def due(self, running: set[int], owned: set[int], outages: int = 0) -> list[int]:
        """Trial numbers to fail, given the RUNNING ones and those a live lease owns."""
        now = self.clock()
        if outages != self._outages:
            self._since.clear()
            self._outages = outages
        self._since = {n: self._since.get(n, now) for n in running - owned}
        return sorted(n for n, since in self._since.items() if now - since > self.timeout)
