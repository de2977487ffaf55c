"""The real POP evaluator: train a candidate with pycaffe for a budget, return its accuracy.

Implements the POP engine's interface (``pop.evaluators.Evaluator``)::

    evaluate(self, encoding: str, workdir: pathlib.Path) -> float   # accuracy in [0, 1]

For a backbone encoding, the generator's ``train`` form (:func:`solvers.net_data.classification_train_net`)
is trained on a classification task (:class:`ClassificationTask`: LMDBs, input size, classes,
iterations, learning rate) with an SGD/poly solver, through :func:`solvers.training.train`; the
result is the validation top-1 of the final weights over the whole validation set.

Every candidate trains in its own process (a child Python running :func:`train_in_child` on
its workdir): a Caffe ``CHECK`` failure aborts that process, not the search, and several
candidates train at once on separate workers — separate ``pop worker`` processes, or
:meth:`CaffeEvaluator.evaluate_many` here.  The CPU threads per candidate are set with
``threads`` (OpenBLAS / OpenMP).

The engine's CLI builds evaluators without arguments (``--evaluator
solvers.pop_evaluator:CaffeEvaluator``): the task then comes from the file named by
``$DFSEG_POP_TASK`` (YAML, the fields of :class:`ClassificationTask`).
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields

from pop.evaluators import EvaluationError, Evaluator
from prototxt_gen.generate import to_text
from dfseg.base.atomic import atomic_write_text
from dfseg.base.textfile import TextFileError, read_yaml

from .net_data import classification_train_net
from .solver_recipes import sgd_solver, write_solver
from .training import train

TASK_ENV = "DFSEG_POP_TASK"
# The child process's whole program: no command module, only this library's entry point.
_CHILD = "import sys; from solvers.pop_evaluator import train_in_child; sys.exit(train_in_child(sys.argv[1]))"


@dataclass(frozen=True)
class ClassificationTask:
    """What "train for a budget" means for one candidate."""

    train_db: str
    val_db: str
    val_size: int
    num_classes: int
    input_size: tuple[int, int]
    iterations: int = 200
    batch_size: int = 32
    val_batch_size: int = 100
    base_lr: float = 0.1
    lr_policy: str = "poly"
    power: float = 2.0              # the paper's poly power
    momentum: float = 0.9
    weight_decay: float = 1e-4
    mean: tuple[float, ...] = ()
    scale: float = 1.0
    rand_h: tuple[int, int] | None = None
    rand_w: tuple[int, int] | None = None
    mirror: bool = False
    seed: int = 0
    threads: int = 1
    timeout_s: float = 1800.0

    @classmethod
    def from_dict(cls, data: dict) -> "ClassificationTask":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EvaluationError(f"task: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        data = dict(data)
        for key in ("input_size", "mean", "rand_h", "rand_w"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        try:
            return cls(**data)
        except TypeError as e:
            raise EvaluationError(f"task: {e}") from None

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "ClassificationTask":
        try:
            return cls.from_dict(read_yaml(path, "task (YAML)", mapping=True))
        except TextFileError as e:
            raise EvaluationError(str(e)) from None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


# --------------------------------------------------------------------------- in-process training
def train_candidate(encoding: str, task: ClassificationTask, workdir: pathlib.Path, progress: bool = False) -> dict:
    """Train ``encoding`` on ``task`` in this process; returns the result record."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    net = classification_train_net(
        encoding, train_source=task.train_db, val_source=task.val_db, num_classes=task.num_classes,
        input_hw=task.input_size, batch_size=task.batch_size, val_batch_size=task.val_batch_size,
        mean=task.mean, scale=task.scale, mirror=task.mirror, rand_h=task.rand_h, rand_w=task.rand_w,
        seed=task.seed)
    atomic_write_text(workdir / "train_net.prototxt", to_text(net))
    sp = sgd_solver("train_net.prototxt", base_lr=task.base_lr, lr_policy=task.lr_policy,
                    power=task.power if task.lr_policy == "poly" else None, max_iter=task.iterations,
                    momentum=task.momentum, weight_decay=task.weight_decay, display=0,
                    test_iter=math.ceil(task.val_size / task.val_batch_size), random_seed=task.seed)
    write_solver(sp, workdir / "solver.in.prototxt")
    result = train(workdir / "solver.in.prototxt", workdir / "run", test_every=task.iterations,
                   snapshot_every=max(1, task.iterations // 2), progress=progress)
    key = next((k for k in result.last_val if "top-1" in k), None) or \
        next((k for k in result.last_val if "accuracy" in k), None)
    if key is None:
        raise EvaluationError(f"{encoding}: the validation net reported no accuracy ({result.last_val})")
    # The validation accuracy is a mean of float32 batch accuracies: two candidates with the same
    # number of correct images can differ in the 8th digit, which would make the slower of them
    # look better on the boundary (Eq. 6).  1e-6 is far below one image of any validation set.
    accuracy = round(float(result.last_val[key]), 6)
    record = {"encoding": encoding, "accuracy": accuracy, "validation": result.last_val,
              "iterations": result.iterations, "weights": str(result.final_weights)}
    atomic_write_text(workdir / "accuracy.json", json.dumps(record, indent=1))
    return record


# --------------------------------------------------------------------------- the evaluator
class CaffeEvaluator(Evaluator):
    """Trains each candidate in a child process; ``evaluate`` returns validation top-1."""

    def __init__(self, task: ClassificationTask | dict | str | pathlib.Path | None = None):
        if task is None:
            path = os.environ.get(TASK_ENV)
            if not path:
                raise EvaluationError(f"CaffeEvaluator needs a task: set ${TASK_ENV} to a task YAML file")
            task = path
        if isinstance(task, (str, pathlib.Path)):
            task = ClassificationTask.load(task)
        elif isinstance(task, dict):
            task = ClassificationTask.from_dict(task)
        self.task = task

    def evaluate(self, encoding: str, workdir: pathlib.Path) -> float:
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        done = workdir / "accuracy.json"
        if done.is_file():  # a finished candidate whose result was not recorded yet
            record = json.loads(done.read_text())
            if record.get("encoding") == encoding:
                return float(record["accuracy"])
        atomic_write_text(workdir / "task.json", json.dumps({"encoding": encoding, "task": self.task.to_dict()}))
        env = dict(os.environ)
        threads = str(self.task.threads)
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   GLOG_minloglevel=env.get("GLOG_minloglevel", "2"))
        repo = pathlib.Path(__file__).resolve().parent.parent
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
        log = workdir / "train.log"
        with log.open("w") as f:
            try:
                proc = subprocess.run([sys.executable, "-c", _CHILD, str(workdir)],
                                      stdout=f, stderr=subprocess.STDOUT, env=env, timeout=self.task.timeout_s)
            except subprocess.TimeoutExpired:
                raise EvaluationError(f"{encoding}: training exceeded {self.task.timeout_s:g} s ({log})") from None
        if proc.returncode != 0 or not done.is_file():
            tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise EvaluationError(f"{encoding}: training failed with exit code {proc.returncode}: {tail[0]} ({log})")
        accuracy = float(json.loads(done.read_text())["accuracy"])
        if not 0.0 <= accuracy <= 1.0:
            raise EvaluationError(f"{encoding}: accuracy {accuracy} outside [0, 1]")
        return accuracy

    def evaluate_many(self, encodings: list[str], root: pathlib.Path, workers: int = 2) -> list[float]:
        """Train several candidates at once (one child process each, ``workers`` at a time)."""
        root = pathlib.Path(root)

        def one(item):
            i, enc = item
            return self.evaluate(enc, root / f"candidate_{i:04d}")

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, enumerate(encodings)))


# --------------------------------------------------------------------------- child process
def train_in_child(workdir: str | pathlib.Path) -> int:
    """The child process's work: train the candidate that ``WORKDIR/task.json`` describes.
    Its stdout and stderr are ``train.log``: the record on success (0); on failure (2) the
    error as the log's last line, which :meth:`CaffeEvaluator.evaluate` quotes."""
    workdir = pathlib.Path(workdir)
    spec = json.loads((workdir / "task.json").read_text())
    try:
        record = train_candidate(spec["encoding"], ClassificationTask.from_dict(spec["task"]), workdir)
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0
