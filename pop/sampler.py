"""The partial order for Optuna users: a sampler that skips candidates the order settles.

:class:`SpaceParams` writes an architecture of Ŝ as Optuna parameters — per stage
``depth{s}`` and one width choice ``w{s}_{b}`` per possible block — and back.  Any draw is
*repaired* into a valid encoding (the block choices sorted, clipped so that widths never
decrease along the network, the first ``depth{s}`` kept); a draw whose architecture lies
outside the latency window is not in Ŝ.

:class:`PartialOrderSampler` wraps another sampler (default: NSGA-II).  Before each trial it
replays the study's COMPLETE trials through Algorithm 1's pruning (``pop.algorithm``, or the
noise-aware rule of ``pop.noise_aware``), then asks the wrapped sampler for a proposal and
accepts it only if it is *unsettled*: in Ŝ, not trained, not being trained by another worker,
not pruned by the partial order.  After ``redraws`` settled proposals it takes the next
unsettled model of a seeded random order of Ŝ (the same sampling Algorithm 1 uses).  Only
Optuna's public sampler interface is used, so it runs on any storage — in particular the
``pop search`` storage (``pop optuna``).

    sampler = PartialOrderSampler(space, base=optuna.samplers.NSGAIISampler(seed=0), seed=0)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler, storage=URL)
    def objective(trial):
        row = sampler.params.suggest(trial)          # a row of Ŝ, never a settled one
        return float(space.latency[row]), train(space.encoding(row))
    study.optimize(objective, n_trials=100)
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from dfseg.base.secrets import mask_urls_in

from .algorithm import PartialOrderPruning
from .noise_aware import NoiseAwarePruning
from .space import Space, may_follow
from .study import StudyError, open_storage

ROW_ATTR = "candidate"   # the same user attribute `pop search` trials carry


class SpaceParams:
    """Optuna parameters <-> rows of a backbone space Ŝ."""

    def __init__(self, space: Space):
        self.space = space
        cfg = space.config
        self.stages = cfg.stages
        self.offsets = cfg.offsets
        self.distributions: dict[str, BaseDistribution] = {}
        for s, spec in enumerate(cfg.stages):
            if spec.max_depth > spec.min_depth:
                self.distributions[f"depth{s}"] = IntDistribution(spec.min_depth, spec.max_depth)
            for b in range(spec.max_depth):
                if len(spec.choices) > 1:
                    self.distributions[f"w{s}_{b}"] = IntDistribution(0, len(spec.choices) - 1)
        self._index = {bytes(r): i for i, r in enumerate(space.counts)}

    def _floor(self, s: int, previous) -> int:
        """Narrowest choice of stage s that may follow the previous stage's last block."""
        for j, choice in enumerate(self.stages[s].choices):
            if may_follow(previous, choice):
                return j
        return len(self.stages[s].choices)

    def decode(self, params: dict[str, Any]) -> int | None:
        """Row of Ŝ for a parameter draw (repaired), or None when it is not in Ŝ."""
        row = np.zeros(self.offsets[-1], np.uint8)
        previous = None
        for s, spec in enumerate(self.stages):
            depth = int(params.get(f"depth{s}", spec.min_depth))
            floor = self._floor(s, previous)
            if floor >= len(spec.choices):
                return None
            picks = sorted(max(int(params.get(f"w{s}_{b}", 0)), floor) for b in range(spec.max_depth))[:depth]
            for j in picks:
                row[self.offsets[s] + j] += 1
            previous = spec.choices[picks[-1]]
        return self._index.get(bytes(row))

    def encode(self, row: int) -> dict[str, Any]:
        """Parameters that decode to `row` (unused block slots get the widest choice)."""
        params: dict[str, Any] = {}
        counts = self.space.counts[row]
        for s, spec in enumerate(self.stages):
            picks = [j for j in range(len(spec.choices)) for _ in range(int(counts[self.offsets[s] + j]))]
            if f"depth{s}" in self.distributions:
                params[f"depth{s}"] = len(picks)
            padded = picks + [len(spec.choices) - 1] * (spec.max_depth - len(picks))
            for b, j in enumerate(padded):
                if f"w{s}_{b}" in self.distributions:
                    params[f"w{s}_{b}"] = j
        return params

    def suggest(self, trial: optuna.Trial) -> int | None:
        """Draw the parameters through `trial` (so any sampler sees them) and decode."""
        params = {name: trial.suggest_int(name, d.low, d.high) for name, d in self.distributions.items()}
        row = self.decode(params)
        if row is not None:
            trial.set_user_attr(ROW_ATTR, int(row))
        return row


class PartialOrderSampler(optuna.samplers.BaseSampler):
    """Wraps `base`; proposes only candidates the partial order has not settled."""

    def __init__(self, space: Space, base: optuna.samplers.BaseSampler | None = None, seed: int = 0,
                 noise_aware: bool = False, quantile: float = 0.9, redraws: int = 8):
        self.space = space
        self.params = SpaceParams(space)
        self.base = base if base is not None else optuna.samplers.NSGAIISampler(seed=seed)
        self.noise_aware = noise_aware
        keys = space.order_keys()
        self.state = (NoiseAwarePruning(keys, space.latency, seed, 10 ** 9, quantile=quantile) if noise_aware
                      else PartialOrderPruning(keys, space.latency, seed, 10 ** 9))
        self.redraws = redraws
        self.skipped = 0           # settled proposals of the base sampler that were not used
        self.fallbacks = 0         # trials that took the next unsettled model of the seeded order
        self._seen: set[int] = set()

    # -- the study's state ---------------------------------------------------------------
    def sync(self, study: optuna.Study, current: int | None = None) -> set[int]:
        """Feed new COMPLETE trials to the pruning state; returns rows being trained now."""
        running = set()
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if t.state == TrialState.RUNNING:
                if t.number != current and t.user_attrs.get(ROW_ATTR) is not None:
                    running.add(int(t.user_attrs[ROW_ATTR]))
                continue
            if t.number in self._seen:
                continue
            self._seen.add(t.number)
            row = t.user_attrs.get(ROW_ATTR)
            row = self.params.decode(t.params) if row is None else int(row)
            if row is not None and not self.state.trained[row] and t.values is not None:
                self.state.add(row, float(t.values[1]))
        return running

    def settled(self, row: int | None, running: set[int] = frozenset()) -> bool:
        return row is None or bool(self.state.trained[row] or self.state.pruned[row]) or row in running

    @property
    def exhausted(self) -> bool:
        """Every model of Ŝ is trained or pruned (for the noise-aware rule: trained)."""
        return self.state.next_candidate() is None

    # -- BaseSampler -----------------------------------------------------------------------
    def infer_relative_search_space(self, study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.params.distributions)

    def sample_relative(self, study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        running = self.sync(study, current=trial.number)
        # the base's own relative space, so that a wrapped sampler draws as it would alone
        # (TPE's default samples each parameter independently: handing it the whole space
        # would switch it to its multivariate mode)
        base_space = self.base.infer_relative_search_space(study, trial)
        base_space = {name: dist for name, dist in base_space.items() if name in search_space}
        proposal: dict[str, Any] = {}
        for _ in range(self.redraws):
            proposal = dict(self.base.sample_relative(study, trial, base_space))
            for name, dist in search_space.items():
                if name not in proposal:   # mutation or first generation: the base's own draw
                    proposal[name] = self.base.sample_independent(study, trial, name, dist)
            if not self.settled(self.params.decode(proposal), running):
                return proposal
            self.skipped += 1
        self.state.next_candidate()   # lets the noise-aware rule re-admit when nothing is left
        row = next(self.state.candidates(exclude=running), None)
        if row is None:
            return proposal   # everything is settled: the objective sees it (`exhausted`)
        self.fallbacks += 1
        return self.params.encode(row)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str, param_distribution) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


# ----------------------------------------------------------------------------- `pop optuna`
OPTUNA_ATTR = "pop_optuna"   # not "pop": `pop worker` / `pop report` replay Algorithm 1 studies only


def optuna_study(storage_url: str, name: str, spec: dict, space: Space) -> tuple[optuna.Study, PartialOrderSampler | None]:
    """Create or join the study; its sampler from `spec` (base, seed, rule)."""
    bases = {"nsga2": lambda s: optuna.samplers.NSGAIISampler(seed=s, population_size=spec["population"]),
             "tpe": lambda s: optuna.samplers.TPESampler(seed=s, multivariate=True),
             "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    base = bases[spec["sampler"]](spec["seed"])
    order = None if spec["rule"] == "none" else PartialOrderSampler(
        space, base=base, seed=spec["seed"], noise_aware=spec["rule"] == "noise-aware", quantile=spec["margin_quantile"])
    study = optuna.create_study(storage=open_storage(storage_url), study_name=name, load_if_exists=True,
                                directions=["minimize", "maximize"], sampler=order or base)
    existing = study.user_attrs.get(OPTUNA_ATTR)
    if existing is None:
        if study.get_trials(deepcopy=False):
            raise StudyError(f"study {name!r} exists and is not a `pop optuna` study")
        study.set_user_attr(OPTUNA_ATTR, spec)
    elif existing != spec:
        changed = sorted(k for k in spec if existing.get(k) != spec[k])
        raise StudyError(f"study {name!r} exists with different settings ({', '.join(changed)}); use another --study")
    return study, order


def run_optuna(study: optuna.Study, order: PartialOrderSampler | None, space: Space, evaluator, budget: int,
               workdir, max_failures: int = 3, log=print) -> int:
    """Ask/tell until the study holds `budget` trained models (or the order settles all of Ŝ).
    Draws outside Ŝ are PRUNED trials, a repeated draw is told its recorded result; neither
    is a training.  Several processes may run this on one study (Optuna's own parallelism)."""
    params = order.params if order is not None else SpaceParams(space)

    def trained() -> dict[int, tuple[float, ...]]:
        return {int(t.user_attrs[ROW_ATTR]): tuple(t.values) for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("trained")}

    done = trained()
    failures = 0
    while len(done) < budget:
        trial = study.ask()
        row = params.suggest(trial)
        if row is None:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        if row in done:
            study.tell(trial, list(done[row]))
            continue
        if order is not None and order.settled(row):
            study.tell(trial, state=TrialState.PRUNED)
            log("pop optuna: the partial order settles every model of S^; stopping")
            break
        encoding = space.encoding(row)
        trial.set_user_attr("encoding", encoding)
        run_dir = pathlib.Path(workdir) / study.study_name / f"{row:08d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            accuracy = float(evaluator.evaluate(encoding, run_dir))
        except Exception as e:
            study.tell(trial, state=TrialState.FAIL)
            log(f"pop optuna: training {encoding} failed: {mask_urls_in(str(e))}")
            failures += 1
            if failures >= max_failures:
                raise StudyError(f"{failures} trainings failed in a row; last: {mask_urls_in(str(e))}")
            continue
        failures = 0
        trial.set_user_attr("trained", True)
        study.tell(trial, [float(space.latency[row]), accuracy])
        done = trained()
    return len(done)
