"""Train a net with its solver through pycaffe: snapshots, resume, curves, divergence stop.

``train(solver, workdir)``:

* writes the effective solver to ``workdir/solver.prototxt`` (nets inlined, snapshots and
  tests driven from here), and trains one iteration at a time;
* snapshots every ``snapshot_every`` iterations (default: the solver's ``snapshot``) to
  ``workdir/snapshots/``; a snapshot counts only once its ``.done`` marker exists (written
  after Caffe's two files, then renamed into place), so a kill during a snapshot never
  leaves a half-written one to resume from;
* on start, resumes from the newest complete snapshot (solver state: iteration, momentum
  history; data layers are moved to the same position of their sample stream);
* logs every iteration's outputs to ``train_log.csv`` and every validation to
  ``val_log.csv`` (rows after the resumed iteration are dropped first), and draws
  ``curves.png``;
* stops with :class:`TrainingDiverged` when a loss is NaN/inf or its running mean grows
  ``divergence_factor`` times above its early level (no snapshot is written then: the last
  good one stays the newest).

``train_phases`` chains solvers (the ImageNet warm-up -> main hand-over), carrying the final
weights of each phase into the next.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tqdm import tqdm

from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError
from prototxt_gen import caffe_pb2
from prototxt_gen.netio import NetReadError, read_net

from tools.runtime.caffe import load_caffe
from .snapshots import (complete_snapshots, learnable_shapes, newest_sound_snapshot, param_shapes,
                        take_snapshot, weights_problem)
from .solver_recipes import RecipeError, learning_rate, read_solver
from .train_logs import CsvLog, plot_curves

_NEVER = 2**31 - 1


class TrainingDiverged(InputError, RuntimeError):
    """Loss became NaN/inf or exploded; the message says when and which snapshot is good.
    Bad input in the sense of the CLI: the settings (learning rate, data) cannot train."""


@dataclass
class TrainResult:
    workdir: Path
    iterations: int
    final_weights: Path
    resumed_from: int | None
    last_val: dict = field(default_factory=dict)
    best_val: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- solver
def _load_net(path: str, base: Path) -> caffe_pb2.NetParameter:
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (base / p).exists():
        p = base / p
    try:
        return read_net(p)
    except NetReadError as e:  # already "file:line: message"
        raise RecipeError(str(e)) from None


def effective_solver(sp: caffe_pb2.SolverParameter, workdir: Path, base: Path) -> caffe_pb2.SolverParameter:
    """A self-contained copy: nets inlined, snapshots and tests left to the runner."""
    out = caffe_pb2.SolverParameter()
    out.CopyFrom(sp)
    if out.HasField("train_net"):
        out.train_net_param.CopyFrom(_load_net(out.train_net, base))
        out.ClearField("train_net")
    if out.HasField("net"):
        out.net_param.CopyFrom(_load_net(out.net, base))
        out.ClearField("net")
    for path in list(out.test_net):
        out.test_net_param.add().CopyFrom(_load_net(path, base))
    out.ClearField("test_net")
    out.snapshot = 0
    out.snapshot_prefix = str((workdir / "snapshots" / "snap").resolve())
    out.snapshot_after_train = False
    if out.test_iter:
        out.test_interval = _NEVER
        out.test_initialization = False
    out.solver_mode = caffe_pb2.SolverParameter.CPU
    return out


# --------------------------------------------------------------------------- validation
def validate(solver, test_iter: int) -> dict:
    """Mean of every test-net output over ``test_iter`` batches (weights shared first)."""
    if not len(solver.test_nets):
        return {}
    net = solver.test_nets[0]
    net.share_with(solver.net)
    sums: dict[str, float] = {}
    for _ in range(test_iter):
        out = net.forward()
        for k, v in out.items():
            if v.size == 1:  # scalar outputs (loss, accuracy); maps such as "pred" are skipped
                sums[k] = sums.get(k, 0.0) + float(v.flat[0])
    return {k: v / test_iter for k, v in sums.items()}


# --------------------------------------------------------------------------- training
@dataclass
class _Plan:
    """When the loop validates and snapshots: the caller's overrides, else the solver's."""

    max_iter: int
    snapshot_every: int
    test_iter: int
    test_every: int

    @staticmethod
    def of(sp: caffe_pb2.SolverParameter, eff: caffe_pb2.SolverParameter, snapshot_every: int | None,
           test_every: int | None) -> "_Plan":
        max_iter = eff.max_iter
        return _Plan(max_iter, snapshot_every or sp.snapshot or max_iter, eff.test_iter[0] if eff.test_iter else 0,
                     test_every or (sp.test_interval if sp.test_iter and sp.test_interval else max_iter))


class _DivergenceWatch:
    """Stops a run whose loss is NaN/inf or whose running mean (EMA 0.9) grew
    ``factor`` times above its level at iteration 20."""

    def __init__(self, workdir: Path, factor: float, max_iter: int):
        self.workdir, self.factor, self.max_iter = workdir, factor, max_iter
        self.early_level: float | None = None
        self.ema: float | None = None

    def check(self, it: int, outputs: dict[str, float]) -> float:
        """The iteration's total loss; raises TrainingDiverged."""
        for k, v in outputs.items():
            if not math.isfinite(v):
                raise TrainingDiverged(_diverged_message(self.workdir, it, f"{k} is {v}"))
        loss = sum(v for k, v in outputs.items() if "loss" in k)
        self.ema = loss if self.ema is None else 0.9 * self.ema + 0.1 * loss
        if it == 20 or (self.early_level is None and it >= self.max_iter):
            self.early_level = self.ema
        if self.early_level and self.ema > self.factor * max(self.early_level, 1e-3) and it > 20:
            raise TrainingDiverged(_diverged_message(
                self.workdir, it,
                f"running loss {self.ema:.4g} > {self.factor:g} x early level {self.early_level:.4g}"))
        return loss


def train(solver: str | Path | caffe_pb2.SolverParameter, workdir: str | Path, *,
          weights: list[str | Path] = (), snapshot_every: int | None = None, test_every: int | None = None,
          keep_snapshots: int = 2, divergence_factor: float = 10.0, progress: bool = True,
          plot: bool = True) -> TrainResult:
    caffe = load_caffe()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "snapshots").mkdir(exist_ok=True)
    if isinstance(solver, caffe_pb2.SolverParameter):
        sp, base = solver, Path.cwd()
    else:
        sp, base = read_solver(solver), Path(solver).resolve().parent
    eff = effective_solver(sp, workdir, base)
    solver_path = workdir / "solver.prototxt"
    atomic_write_text(solver_path, text_format.MessageToString(eff))
    plan = _Plan.of(sp, eff, snapshot_every, test_every)
    s, train_layers, test_layers = _open_solver(caffe, solver_path)
    resumed_from = _resume_or_start(s, eff, workdir, weights, train_layers)
    last_val, best_val = _run_iterations(s, eff, plan, workdir, resumed_from, test_layers,
                                         _DivergenceWatch(workdir, divergence_factor, plan.max_iter),
                                         keep_snapshots, progress, plot)
    final = workdir / "final.caffemodel"
    tmp = workdir / "final.caffemodel.tmp"
    s.net.save(str(tmp))
    os.replace(tmp, final)
    atomic_write_text(workdir / "result.json", json.dumps(
        {"iterations": s.iter, "final_weights": str(final), "resumed_from": resumed_from,
         "last_val": last_val, "best_val": best_val}, indent=1))
    return TrainResult(workdir, s.iter, final, resumed_from, last_val, best_val)


def _open_solver(caffe, solver_path: Path):
    """Caffe's solver for ``solver_path`` and the Python data layers its nets created
    (training layers, test layers)."""
    # Imported here, not at the top: solvers.data_layers subclasses caffe.Layer, so importing
    # it imports pycaffe, which stays optional until something trains.
    from . import data_layers

    first_layer = len(data_layers.live_layers())
    s = caffe.get_solver(str(solver_path))
    new_layers = data_layers.live_layers()[first_layer:]
    return s, [l for l in new_layers if l.train], [l for l in new_layers if not l.train]


def _resume_or_start(s, eff: caffe_pb2.SolverParameter, workdir: Path, weights, train_layers) -> int | None:
    """Restore the newest sound snapshot (and move the data layers to its position), else load
    the initial weights; returns the iteration resumed from, or None."""
    # Caffe aborts (SIGABRT) on a truncated snapshot or weights file: check them here first.
    shapes = param_shapes(s.net)
    train_net = eff.train_net_param if eff.HasField("train_net_param") else eff.net_param
    resumed_from = newest_sound_snapshot(workdir, shapes, learnable_shapes(shapes, train_net),
                                         warn=lambda line: print(line, file=sys.stderr))
    if resumed_from is not None:
        s.restore(str(workdir / "snapshots" / f"snap_iter_{resumed_from}.solverstate"))
        for layer in train_layers:
            layer.seek(resumed_from * layer.params.batch_size * eff.iter_size)
        print(f"resumed from iteration {resumed_from} ({workdir / 'snapshots'})", file=sys.stderr)
        return resumed_from
    for w in weights:
        if not Path(w).is_file():
            raise RecipeError(f"{w}: no such weights file")
        problem = weights_problem(Path(w), shapes, every_layer=False)   # e.g. a backbone's
        if problem:
            raise RecipeError(problem)
        s.net.copy_from(str(w))
    return None


def _run_iterations(s, eff: caffe_pb2.SolverParameter, plan: _Plan, workdir: Path, resumed_from: int | None,
                    test_layers: list, watch: _DivergenceWatch, keep_snapshots: int, progress: bool,
                    plot: bool) -> tuple[dict, dict]:
    """Step to max_iter: log, validate, snapshot; returns (last validation, best validation)."""
    train_log = CsvLog(workdir / "train_log.csv", resumed_from)
    val_log = CsvLog(workdir / "val_log.csv", resumed_from)
    start = time.time()
    last_val: dict = {}
    best_val: dict = {}
    bar = tqdm(total=plan.max_iter, initial=s.iter, desc=f"training {workdir.name}", unit="it",
               disable=None if progress else True)
    try:
        while s.iter < plan.max_iter:
            lr = learning_rate(eff, s.iter)
            s.step(1)
            it = s.iter
            outputs = {k: float(s.net.blobs[k].data.flat[0]) for k in s.net.outputs if s.net.blobs[k].data.size == 1}
            loss = watch.check(it, outputs)
            train_log.append({"iteration": it, "elapsed_s": round(time.time() - start, 3), "lr": lr, **outputs})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if plan.test_iter and (it % plan.test_every == 0 or it == plan.max_iter):
                for layer in test_layers:  # every validation sees the same images
                    layer.seek(0)
                last_val = validate(s, plan.test_iter)
                val_log.append({"iteration": it, **last_val})
                key = next((k for k in last_val if "accuracy" in k), None)
                if key and (not best_val or last_val[key] > best_val[key]):
                    best_val = {"iteration": it, **last_val}
            if it % plan.snapshot_every == 0 or it == plan.max_iter:
                take_snapshot(s, workdir, keep_snapshots)
                if plot:
                    plot_curves(workdir)
    finally:
        bar.close()
        if plot:
            plot_curves(workdir)
    return last_val, best_val


def _diverged_message(workdir: Path, it: int, what: str) -> str:
    done = complete_snapshots(workdir)
    good = f"last good snapshot: iteration {done[-1]}" if done else "no snapshot was taken"
    return f"training diverged at iteration {it}: {what}; stopped ({good}, {workdir / 'snapshots'})"


def train_phases(phases: list[tuple[str, str | Path | caffe_pb2.SolverParameter]], workdir: str | Path, *,
                 weights: list[str | Path] = (), **kw) -> list[TrainResult]:
    """Train the solvers one after another in ``workdir/<name>/``; each phase starts from the
    previous phase's final weights (the warm-up -> main hand-over).  A finished phase
    (``result.json`` present) is not trained again, so the whole chain resumes."""
    workdir = Path(workdir)
    results = []
    carried = list(weights)
    for name, solver in phases:
        phase_dir = workdir / name
        result_file = phase_dir / "result.json"
        if result_file.is_file():
            data = json.loads(result_file.read_text())
            result = TrainResult(phase_dir, data["iterations"], Path(data["final_weights"]), data["resumed_from"],
                                 data.get("last_val", {}), data.get("best_val", {}))
        else:
            result = train(solver, phase_dir, weights=carried, **kw)
        results.append(result)
        carried = [result.final_weights]
    return results
