"""One search loop for the benchmarks: POP, random search and NSGA-II on a space Ŝ whose
accuracies are known in advance, each run until its trained models' hypervolume reaches a share
of the exhaustive boundary's (``make bench-pop``: :mod:`pop.benchmark` and :mod:`pop.robustness`).

A method *decides* on ``acc`` (what training returned) and is *scored* on ``truth`` (the
model's worth; the same array where there is no noise): the hypervolume after each training,
latency ↓ and accuracy ↑ against the reference point ``ref``, as a fraction of ``exhaustive``
(the hypervolume of all of Ŝ).  A search stops at the target, at the budget, when Ŝ \\ P is
empty (plain POP) or after ``max_asks`` NSGA-II draws.

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

import numpy as np
import optuna

from .algorithm import HypervolumeTracker, PartialOrderPruning
from .noise_aware import pruning_state
from .sampler import PartialOrderSampler, SpaceParams

__all__ = ["METHODS", "POP_VARIANTS", "TARGET", "MAX_ASKS", "HypervolumeCurve", "run_algorithm1", "run_random",
           "run_sampler", "run_method", "SAMPLERS", "OPT_IN_METHODS"]

METHODS = ("pop", "pop_boundary", "pop_noise_aware", "pop_noise_aware_boundary", "random", "nsga2", "nsga2_order",
           "tpe", "tpe_order", "nsga3", "nsga3_order")
OPT_IN_METHODS = ("gp", "gp_order")   # runnable by name, too slow for the bench's budget
POP_VARIANTS = ("pop", "pop_boundary", "pop_noise_aware", "pop_noise_aware_boundary")
TARGET = 0.99
MAX_ASKS = 10_000   # an Optuna sampler's draws (repeats and draws outside Ŝ are asks, not trainings)

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

    def result(self) -> dict:
        """{"trainings": trainings to the target (None: never got there), "curve": HV fractions,
        "final_hv": the last HV fraction}."""
        return {"trainings": len(self.values) if self.reached else None, "curve": np.asarray(self.values),
                "final_hv": self.values[-1] if self.values else 0.0}


def run_algorithm1(state: PartialOrderPruning, lat, acc, truth, budget, curve: HypervolumeCurve) -> dict:
    for _ in range(budget):
        x = state.next_candidate()
        if x is None:
            break
        state.add(x, acc[x])
        if curve.add(lat[x], truth[x]):
            break
    return curve.result()


def run_random(lat, truth, seed, budget, curve: HypervolumeCurve) -> dict:
    for x in np.random.default_rng(seed).permutation(lat.size)[:budget]:
        if curve.add(lat[x], truth[x]):
            break
    return curve.result()


def run_sampler(name, space, acc, truth, seed, budget, curve: HypervolumeCurve, order: bool,
                max_asks: int = MAX_ASKS) -> dict:
    """An Optuna sampler of SAMPLERS; a draw outside Ŝ is a failed trial, a repeated one is told
    its known result — neither is a training.  With ``order`` the sampler never proposes a
    settled model."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = make_sampler(name, seed)
    sampler = PartialOrderSampler(space, base=base, seed=seed, noise_aware=True) if order else base
    params = sampler.params if order else SpaceParams(space)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    seen: set[int] = set()
    for _ in range(max_asks):
        if len(seen) >= budget or (order and sampler.exhausted):
            break
        t = study.ask()
        i = params.suggest(t)
        if i is None:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            continue
        values = (float(space.latency[i]), float(acc[i]))
        if i not in seen:
            seen.add(i)
            if curve.add(values[0], truth[i]):
                study.tell(t, values)
                break
        study.tell(t, values)
    return curve.result()


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
