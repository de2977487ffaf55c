"""One search loop for the benchmarks: POP, random search and NSGA-II on a space Ŝ whose
accuracies are known in advance, each run until its trained models' hypervolume reaches a share
of the exhaustive boundary's (``make bench-pop``: :mod:`pop.benchmark` and :mod:`pop.robustness`).

A method *decides* on ``acc`` (what training returned) and is *scored* on ``truth`` (the
model's worth; the same array where there is no noise): the hypervolume after each training,
latency ↓ and accuracy ↑ against the reference point ``ref``, as a fraction of ``exhaustive``
(the hypervolume of all of Ŝ).  A search stops at the target, at the budget, when Ŝ \\ P is
empty (plain POP), or — an Optuna sampler — after ``max_asks`` draws or once it has stalled
(fewer than ``STALL_NEW`` new models in its last ``STALL_ASKS`` draws).  Each result says which
(``stopped``).  An Optuna sampler's draw outside Ŝ is told as a PRUNED trial, as ``pop optuna``
tells it: TPE then counts it among the worse trials and moves away (a FAILED trial it ignores, and
after its start-up trials it proposed the same model outside Ŝ at every ask); NSGA-II and
NSGA-III use only COMPLETE trials, so for them the two are the same.

Methods: ``pop`` (Algorithm 1, run on past its stopping rule), ``pop_noise_aware``
(``pop.noise_aware``), each also with boundary sampling (``pop_boundary``,
``pop_noise_aware_boundary``: ``pop.sampling``), ``random``, ``nsga2`` (Optuna's NSGA-II,
population 50, the encoding of ``pop.sampler.SpaceParams``) and ``nsga2_order`` (the same
NSGA-II wrapped in ``pop.sampler.PartialOrderSampler`` with the noise-aware rule); the other
stock Optuna multi-objective samplers the same way, plain and wrapped (``*_order``): ``tpe``
(``TPESampler`` with Optuna's defaults — what ``optuna.create_study`` uses when no sampler is
given, in Optuna 5 also for multi-objective studies) and ``nsga3`` (``NSGAIIISampler``,
population 50).  ``gp`` / ``gp_order`` (``GPSampler``, log-EHVI for two objectives) run here
too but are not in METHODS: a GP fit per ask, cubic in the trials, makes the bench's budget
(|Ŝ| trainings, 10,000 asks) days of CPU — see docs/pop.md.
"""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np
import optuna

from .algorithm import HypervolumeTracker, PartialOrderPruning
from .noise_aware import pruning_state
from .sampler import PartialOrderSampler, SpaceParams

__all__ = ["METHODS", "POP_VARIANTS", "TARGET", "MAX_ASKS", "STALL_ASKS", "STALL_NEW", "StallWatch",
           "HypervolumeCurve", "run_algorithm1", "run_random", "run_sampler", "run_method", "SAMPLERS",
           "OPT_IN_METHODS"]

METHODS = ("pop", "pop_boundary", "pop_noise_aware", "pop_noise_aware_boundary", "random", "nsga2", "nsga2_order",
           "tpe", "tpe_order", "nsga3", "nsga3_order")
OPT_IN_METHODS = ("gp", "gp_order")   # runnable by name, too slow for the bench's budget
POP_VARIANTS = ("pop", "pop_boundary", "pop_noise_aware", "pop_noise_aware_boundary")
TARGET = 0.99
MAX_ASKS = 10_000   # an Optuna sampler's draws (repeats and draws outside Ŝ are asks, not trainings)
# a sampler that found fewer than STALL_NEW new models in its last STALL_ASKS draws has stalled:
# it is re-drawing what it holds (TPE at every noise level of the bench).  NSGA-II never stalls
# by this rule on the bench (>= 16 new models in every 1,000 draws at four levels, all seeds, and
# none of its 30 searches stalled in the full run), so its figures are those of the cap alone.
STALL_ASKS = 1_000
STALL_NEW = 10

# the stock Optuna multi-objective samplers, by method name (``{name}`` plain, ``{name}_order``
# inside the partial-order sampler)
SAMPLERS = {
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=50),
    "nsga3": lambda seed: optuna.samplers.NSGAIIISampler(seed=seed, population_size=50),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),   # Optuna's defaults: its default sampler
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """A base sampler of SAMPLERS; Optuna's "experimental" warnings (NSGA-III, GP) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SAMPLERS[name](seed)


class HypervolumeCurve:
    """HV fraction after each training, until ``target`` of the exhaustive boundary's HV."""

    def __init__(self, ref, exhaustive: float, target: float = TARGET):
        self.hv = HypervolumeTracker(*ref)
        self.exhaustive = exhaustive
        self.goal = target * exhaustive
        self.values: list[float] = []
        self.reached = False

    def add(self, lat, acc) -> bool:
        """Count one training; True once the target is reached."""
        hv = self.hv.add(float(lat), float(acc))
        self.values.append(hv / self.exhaustive)
        self.reached = hv >= self.goal
        return self.reached

    def result(self, stopped: str) -> dict:
        """{"trainings": trainings to the target (None: never got there), "curve": HV fractions,
        "final_hv": the last HV fraction, "stopped": "target", or why the search ended short of it
        (`stopped`: budget, exhausted, asks, stalled)}."""
        return {"trainings": len(self.values) if self.reached else None, "curve": np.asarray(self.values),
                "final_hv": self.values[-1] if self.values else 0.0,
                "stopped": "target" if self.reached else stopped}


def run_algorithm1(state: PartialOrderPruning, lat, acc, truth, budget, curve: HypervolumeCurve) -> dict:
    stopped = "budget"
    for _ in range(budget):
        x = state.next_candidate()
        if x is None:
            stopped = "exhausted"
            break
        state.add(x, acc[x])
        if curve.add(lat[x], truth[x]):
            break
    return curve.result(stopped)


def run_random(lat, truth, seed, budget, curve: HypervolumeCurve) -> dict:
    for x in np.random.default_rng(seed).permutation(lat.size)[:budget]:
        if curve.add(lat[x], truth[x]):
            break
    return curve.result("budget")


class StallWatch:
    """True once fewer than ``new`` new models came in the last ``window`` asks."""

    def __init__(self, window: int = STALL_ASKS, new: int = STALL_NEW):
        self.window, self.new = window, new
        self.asks = 0
        self.recent: deque[int] = deque()   # the asks that brought a new model, within the window

    def ask(self, brought_new: bool) -> bool:
        self.asks += 1
        if brought_new:
            self.recent.append(self.asks)
        while self.recent and self.recent[0] <= self.asks - self.window:
            self.recent.popleft()
        return self.asks >= self.window and len(self.recent) < self.new


def run_sampler(name, space, acc, truth, seed, budget, curve: HypervolumeCurve, order: bool,
                max_asks: int = MAX_ASKS) -> dict:
    """An Optuna sampler of SAMPLERS; a draw outside Ŝ is a PRUNED trial, a repeated one is told
    its known result — neither is a training.  With ``order`` the sampler never proposes a
    settled model.  Stops at the target, the budget, ``max_asks``, a stall (:class:`StallWatch`)
    or, with ``order``, when the order settles Ŝ."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = make_sampler(name, seed)
    sampler = PartialOrderSampler(space, base=base, seed=seed, noise_aware=True) if order else base
    params = sampler.params if order else SpaceParams(space)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    seen: set[int] = set()
    stall = StallWatch()
    stopped = "asks"
    while stall.asks < max_asks:
        if len(seen) >= budget or (order and sampler.exhausted):
            stopped = "budget" if len(seen) >= budget else "exhausted"
            break
        t = study.ask()
        i = params.suggest(t)
        new = i is not None and i not in seen
        if i is None:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            values = (float(space.latency[i]), float(acc[i]))
            seen.add(i)
            reached = new and curve.add(values[0], truth[i])
            study.tell(t, values)
            if reached:
                break
        if stall.ask(new):
            stopped = "stalled"
            break
    result = curve.result(stopped)
    result["asks"] = stall.asks
    return result


def run_method(method, space, keys, acc, truth, seed, budget, ref, exhaustive, max_asks: int = MAX_ASKS,
               target: float = TARGET) -> dict:
    """One search (a name of METHODS or OPT_IN_METHODS); decisions on `acc`, hypervolume on `truth`; returns
    :meth:`HypervolumeCurve.result` (stopping at ``target`` of the exhaustive hypervolume)."""
    lat = space.latency
    curve = HypervolumeCurve(ref, exhaustive, target)
    if method in POP_VARIANTS:
        rule = "noise-aware" if method.startswith("pop_noise_aware") else "pop"
        sampling = "boundary" if method.endswith("_boundary") else "uniform"
        state = pruning_state(rule, keys, lat, seed, 10 ** 9, sampling=sampling)
        return run_algorithm1(state, lat, acc, truth, budget, curve)
    if method == "random":
        return run_random(lat, truth, seed, budget, curve)
    name = method.removesuffix("_order")
    if name in SAMPLERS:
        return run_sampler(name, space, acc, truth, seed, budget, curve, order=method.endswith("_order"),
                           max_asks=max_asks)
    raise ValueError(f"unknown method {method!r}")
