"""Solver prototxts as ``SolverParameter`` messages, built from YAML recipes.

Two recipes ship in ``solvers/recipes/``:

* ``imagenet.yaml`` — the paper's backbone recipe (SGD, momentum 0.9, weight decay 1e-4,
  5 warm-up epochs at a constant 0.1, then 80 epochs of poly (power 2) from 0.8, total batch
  2048).  The total batch is ``batch_size x iter_size x devices``; epochs become iterations
  from the data set size.  :func:`imagenet_solvers` returns the two solvers;
  :func:`solvers.training.train_phases` carries the warm-up's final weights into the main phase.
* ``cityscapes.yaml`` — DF-Seg on Cityscapes: poly, crop, ignore label 255, iterations,
  the backbone's ImageNet caffemodel as initial weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from google.protobuf import text_format

from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError
from dfseg.base.textfile import TextFileError, read_text, read_yaml
from prototxt_gen import caffe_pb2

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


class RecipeError(InputError, ValueError):
    """A recipe or batch arithmetic that cannot work; the message says which value."""


# --------------------------------------------------------------------------- recipes
def load_recipe(name_or_path: str | Path) -> dict:
    """A recipe by name (``imagenet``, ``cityscapes``) or from a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise RecipeError(f"recipe {name_or_path!r} not found (known: {known})")
    try:
        return read_yaml(path, "training recipe (YAML)", mapping=True)
    except TextFileError as e:
        raise RecipeError(str(e)) from None


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """``key=value`` / ``section.key=value`` overrides, values parsed as YAML scalars."""
    recipe = yaml.safe_load(yaml.safe_dump(recipe))  # deep copy
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        target = recipe
        *parents, leaf = key.split(".")
        for p in parents:
            if not isinstance(target.get(p), dict):
                raise RecipeError(f"override {item!r}: {p!r} is not a section of the recipe")
            target = target[p]
        if leaf not in target:
            raise RecipeError(f"override {item!r}: unknown key {key!r}")
        target[leaf] = yaml.safe_load(value)
    return recipe


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class Batch:
    """The effective batch: ``batch_size`` per forward, ``iter_size`` accumulated, ``devices``."""

    batch_size: int
    iter_size: int = 1
    devices: int = 1

    @property
    def total(self) -> int:
        return self.batch_size * self.iter_size * self.devices


def batch_for(total: int, batch_size: int, devices: int = 1) -> Batch:
    """The ``iter_size`` that makes ``batch_size x iter_size x devices == total``."""
    if batch_size <= 0 or devices <= 0 or total <= 0:
        raise RecipeError(f"batch sizes must be positive (total {total}, batch_size {batch_size}, devices {devices})")
    per_step = batch_size * devices
    if total % per_step:
        raise RecipeError(
            f"total batch {total} is not a multiple of batch_size {batch_size} x devices {devices} = {per_step}")
    return Batch(batch_size, total // per_step, devices)


def epochs_to_iterations(epochs: float, dataset_size: int, total_batch: int) -> int:
    """Solver iterations (one iteration = one total batch) covering ``epochs`` of the data."""
    if dataset_size <= 0:
        raise RecipeError(f"dataset size must be positive, got {dataset_size}")
    return max(1, math.ceil(epochs * dataset_size / total_batch))


# --------------------------------------------------------------------------- solvers
def sgd_solver(net: str | Path | caffe_pb2.NetParameter, *, base_lr: float, lr_policy: str,
               max_iter: int, momentum: float, weight_decay: float, power: float | None = None,
               iter_size: int = 1, display: int = 20, snapshot: int = 0,
               snapshot_prefix: str | Path | None = None,
               test_net: str | Path | caffe_pb2.NetParameter | None = None,
               test_iter: int | None = None, test_interval: int | None = None,
               random_seed: int | None = None) -> caffe_pb2.SolverParameter:
    """One SGD solver.  Nets are file paths (kept as given) or messages (inlined).

    Without ``test_net``, ``net`` is written as the solver's ``net``: Caffe instantiates its
    TRAIN phase for training and, when ``test_iter`` is given, its TEST phase for validation
    (the generator's ``train`` form carries both).  With ``test_net``, ``net`` becomes
    ``train_net``."""
    if max_iter <= 0:
        raise RecipeError(f"max_iter must be positive, got {max_iter}")
    if lr_policy == "poly" and power is None:
        raise RecipeError("lr_policy poly needs a power")
    sp = caffe_pb2.SolverParameter()
    as_message = isinstance(net, caffe_pb2.NetParameter)
    if test_net is None:
        sp.net_param.CopyFrom(net) if as_message else setattr(sp, "net", str(net))
    else:
        sp.train_net_param.CopyFrom(net) if as_message else setattr(sp, "train_net", str(net))
        if isinstance(test_net, caffe_pb2.NetParameter):
            sp.test_net_param.add().CopyFrom(test_net)
        else:
            sp.test_net.append(str(test_net))
        if not test_iter:
            raise RecipeError("a test net needs test_iter (validation batches per test)")
    if test_iter:
        sp.test_iter.append(int(test_iter))
        sp.test_interval = int(test_interval or max_iter)
        sp.test_initialization = False
    sp.type = "SGD"
    sp.base_lr = float(base_lr)
    sp.lr_policy = lr_policy
    if power is not None:
        sp.power = float(power)
    sp.momentum = float(momentum)
    sp.weight_decay = float(weight_decay)
    sp.max_iter = int(max_iter)
    sp.iter_size = int(iter_size)
    sp.display = int(display)
    sp.snapshot = int(snapshot)
    if snapshot_prefix is not None:
        sp.snapshot_prefix = str(snapshot_prefix)
    if random_seed is not None:
        sp.random_seed = int(random_seed)
    sp.solver_mode = caffe_pb2.SolverParameter.CPU
    return sp


def learning_rate(sp: caffe_pb2.SolverParameter, iteration: int) -> float:
    """Caffe's ``SGDSolver::GetLearningRate`` for the policies our recipes use."""
    policy = sp.lr_policy
    if policy == "fixed":
        return sp.base_lr
    if policy == "poly":
        return sp.base_lr * (1.0 - iteration / sp.max_iter) ** sp.power
    if policy == "step":
        return sp.base_lr * sp.gamma ** (iteration // sp.stepsize)
    if policy == "exp":
        return sp.base_lr * sp.gamma ** iteration
    if policy == "inv":
        return sp.base_lr * (1 + sp.gamma * iteration) ** (-sp.power)
    raise RecipeError(f"learning-rate policy {policy!r} is not supported here")


@dataclass(frozen=True)
class ImagenetPlan:
    warmup: caffe_pb2.SolverParameter
    main: caffe_pb2.SolverParameter
    batch: Batch
    iterations_per_epoch: int

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return write_solver(self.warmup, out / "solver_warmup.prototxt"), \
            write_solver(self.main, out / "solver_main.prototxt")


def imagenet_solvers(train_net, *, dataset_size: int, batch_size: int, devices: int = 1,
                     recipe: dict | None = None, test_net=None, val_size: int | None = None,
                     test_batch_size: int | None = None,
                     snapshot_prefix: str | Path = "snapshots/imagenet") -> ImagenetPlan:
    """The paper's two ImageNet solvers: constant warm-up, then poly from the higher rate."""
    r = recipe or load_recipe("imagenet")
    batch = batch_for(int(r["total_batch"]), batch_size, devices)
    per_epoch = epochs_to_iterations(1, dataset_size, batch.total)
    test = {}
    if test_net is not None or val_size:
        if not val_size:
            raise RecipeError("validation needs the validation set size (val_size)")
        test = dict(test_net=test_net, test_iter=math.ceil(val_size / (test_batch_size or batch_size)),
                    test_interval=max(1, round(per_epoch * float(r.get("test_epochs", 1)))))
    common = dict(momentum=r["momentum"], weight_decay=r["weight_decay"], iter_size=batch.iter_size,
                  display=int(r.get("display", 20)),
                  snapshot=max(1, round(per_epoch * float(r.get("snapshot_epochs", 1)))), **test)
    phases = []
    for phase in ("warmup", "main"):
        p = r[phase]
        phases.append(sgd_solver(
            train_net, base_lr=p["base_lr"], lr_policy=p["lr_policy"], power=p.get("power"),
            max_iter=epochs_to_iterations(float(p["epochs"]), dataset_size, batch.total),
            snapshot_prefix=f"{snapshot_prefix}_{phase}", **common))
    return ImagenetPlan(phases[0], phases[1], batch, per_epoch)


def cityscapes_solver(train_net, *, recipe: dict | None = None, test_net=None, test_iter: int | None = None,
                      snapshot_prefix: str | Path = "snapshots/cityscapes") -> caffe_pb2.SolverParameter:
    """The DF-Seg solver (poly, iterations).  Crop, scaling and ignore label live in the
    train net's data and loss layers (:func:`solvers.net_data.segmentation_train_net`)."""
    r = recipe or load_recipe("cityscapes")
    batch = batch_for(int(r["batch_size"]) * int(r["iter_size"]) * int(r["devices"]), int(r["batch_size"]),
                      int(r["devices"]))
    return sgd_solver(train_net, base_lr=r["base_lr"], lr_policy=r["lr_policy"], power=r.get("power"),
                      max_iter=int(r["max_iter"]), momentum=r["momentum"], weight_decay=r["weight_decay"],
                      iter_size=batch.iter_size, display=int(r.get("display", 20)),
                      snapshot=int(r.get("snapshot", 0)), snapshot_prefix=snapshot_prefix,
                      test_net=test_net, test_iter=test_iter)


def write_solver(sp: caffe_pb2.SolverParameter, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text_format.MessageToString(sp))
    return path


def read_solver(path: str | Path) -> caffe_pb2.SolverParameter:
    path = Path(path)
    try:
        return text_format.Parse(read_text(path, "SolverParameter prototxt"), caffe_pb2.SolverParameter())
    except TextFileError as e:
        raise RecipeError(str(e)) from None
    except text_format.ParseError as e:
        raise RecipeError(f"{path}: not a SolverParameter prototxt: {e}") from None
