"""Evaluators: what "train x" means in Algorithm 1.

Interface (the pycaffe training evaluator in ``solvers/pop_evaluator.py`` implements it)::

    class Evaluator:
        def evaluate(self, encoding: str, workdir: pathlib.Path) -> float

``encoding`` is the text form of :mod:`prototxt_gen.encoding` (a backbone, or
``BACKBONE:[C3,C4,C5]`` for the decoder search); the result is the accuracy (top-1 or mIoU)
in [0, 1]; failures raise (the search records the trial as failed and offers the candidate
again).  ``workdir`` is a fresh directory the evaluator may fill (snapshots, logs).

Provided here:

* :class:`CsvReplay` — accuracies looked up in a CSV of ``encoding,accuracy`` (replaying a
  finished search, or results trained elsewhere).
* :class:`Surrogate` — a synthetic accuracy for simulations and benchmarks, built to follow
  the paper's partial-order assumption with configurable noise and occasional small
  violations (the paper observed ΔAcc down to −0.1 %).

Trust.  A study stores the evaluator it was created with, and anyone who can write to a shared
database can change it; a worker without ``--evaluator`` therefore loads a stored evaluator
only when it is one of the package's own (:func:`stored_evaluator`): ``surrogate…`` and
``csv:PATH`` (parsed here, nothing imported) and the ``module:Class`` names that installed
distributions declare in the entry-point group ``dfseg.evaluators`` (dfseg declares its pycaffe
evaluator there in ``pyproject.toml``, so this floor never names it).  Anything else stops the
worker before any import, with one line saying how to allow it (``--evaluator MODULE:CLASS``).
"""
from __future__ import annotations

import csv
import hashlib
import importlib
import math
import pathlib
import shlex
from importlib.metadata import entry_points

from prototxt_gen.encoding import (
    Backbone,
    EncodingError,
    SegmentationNet,
    parse_encoding,
)
from dfseg.base.textfile import TextFileError, read_text
from dfseg.base.errors import InputError


class EvaluationError(InputError, RuntimeError):
    pass


class Evaluator:
    def evaluate(self, encoding: str, workdir: pathlib.Path) -> float:
        raise NotImplementedError


class CsvReplay(Evaluator):
    """Accuracies from a CSV file with columns ``encoding,accuracy`` (a header row is
    optional; accuracies in percent are accepted and divided by 100).

    With ``column`` the file has a header and the accuracy is that column (a table of
    trainings, ``encoding,latency_ms,accuracy_seed0,accuracy_seed1``: ``csv:PATH#accuracy_seed0``);
    an empty cell is a model not trained, which :meth:`evaluate` reports as such."""

    def __init__(self, path: pathlib.Path, column: str | None = None):
        self.path = pathlib.Path(path)
        self.column = column
        self.table: dict[str, float] = {}
        try:
            text = read_text(self.path, "CSV of encoding,accuracy rows")
        except TextFileError as e:
            raise EvaluationError(str(e)) from None
        rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1)
                if row and not row[0].startswith("#")]
        for n, enc, acc in (self._named_column(rows) if column else self._last_field(rows)):
            if acc == "":
                continue
            self.table[self._key(n, enc)] = self._value(n, acc)

    def _last_field(self, rows):
        for n, row in rows:
            if n == rows[0][0] and row[0].strip().lower() == "encoding":
                continue
            if len(row) < 2:
                raise EvaluationError(f"{self.path}:{n}: expected encoding,accuracy")
            # encodings contain commas: the accuracy is the last field
            yield n, ",".join(row[:-1]).strip(), row[-1].strip()

    def _named_column(self, rows):
        header = rows[0][1] if rows else []
        if not header or header[0].strip().lower() != "encoding" or self.column not in header:
            raise EvaluationError(f"{self.path}: no header naming the column {self.column!r} "
                                  f"(found {', '.join(header) or 'nothing'})")
        at = header.index(self.column)
        for n, row in rows[1:]:
            if len(row) != len(header):
                raise EvaluationError(f"{self.path}:{n}: {len(row)} fields, the header has {len(header)} "
                                      "(quote encodings that contain commas)")
            yield n, row[0].strip(), row[at].strip()

    def _value(self, n: int, acc: str) -> float:
        try:
            value = float(acc)
        except ValueError:
            raise EvaluationError(f"{self.path}:{n}: accuracy {acc!r} is not a number")
        return value / 100.0 if value > 1.0 else value

    def _key(self, n: int, enc: str) -> str:
        try:
            return str(parse_encoding(enc))
        except EncodingError as e:
            raise EvaluationError(f"{self.path}:{n}: {e}")

    def evaluate(self, encoding: str, workdir: pathlib.Path) -> float:
        key = str(parse_encoding(encoding))
        try:
            return self.table[key]
        except KeyError:
            where = f" (column {self.column})" if self.column else ""
            raise EvaluationError(f"{self.path}: no accuracy for {key}{where}")


def _unit_normal(seed: int, text: str) -> float:
    """A reproducible N(0, 1) draw keyed by (seed, encoding): Box-Muller on a hash."""
    h = hashlib.sha256(f"{seed}|{text}".encode()).digest()
    u1 = (int.from_bytes(h[:8], "big") + 1) / 2.0 ** 64
    u2 = int.from_bytes(h[8:16], "big") / 2.0 ** 64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


class Surrogate(Evaluator):
    """Synthetic accuracy that respects the partial order up to small violations.

    capacity(x) = Σ over blocks of  stage_weight[s] · (out / 64) ** 0.5   (bottlenecks add
                  their mid width as well), decoder: Σ_i (C_i / 32) ** 0.5 on top of the
                  backbone's capacity;
    accuracy    = floor + (ceiling − floor) · (1 − exp(−capacity / scale)) + noise,

    Every term is positive and grows with width, so adding or widening a block strictly
    raises the noiseless accuracy: the partial-order assumption holds exactly.  The noise is
    N(0, noise²) keyed by (seed, encoding) — the same model always gets the same accuracy —
    and clipped to ±max_violation/2, so a pair x ≺ y can be inverted by at most
    ``max_violation`` (default 0.001 = the paper's −0.1 %).  Inversions happen where
    comparable models are closer than that: small steps (one narrow block more) in the
    saturated, high-capacity part of the curve — occasionally, as in the paper.
    """

    def __init__(self, seed: int = 0, noise: float = 0.002, max_violation: float = 0.001,
                 floor: float = 0.55, ceiling: float = 0.80, scale: float = 30.0,
                 stage_weights: tuple[float, float, float] = (0.6, 1.0, 1.4), delay: float = 0.0):
        if noise < 0 or max_violation < 0:
            raise ValueError("noise and max_violation must be >= 0")
        self.seed, self.noise, self.max_violation = seed, noise, max_violation
        self.floor, self.ceiling, self.scale = floor, ceiling, scale
        self.stage_weights = stage_weights
        self.delay = delay  # seconds of simulated training (concurrency tests)

    def capacity(self, net: Backbone | SegmentationNet) -> float:
        if isinstance(net, SegmentationNet):
            return self.capacity(net.backbone) + sum((c / 32.0) ** 0.5 for c in net.wc_widths)
        total = 0.0
        for s, _, blk in net.blocks:
            total += self.stage_weights[s] * sum((w / 64.0) ** 0.5 for w in blk.widths)
        return total

    def clean_accuracy(self, net) -> float:
        return self.floor + (self.ceiling - self.floor) * (1.0 - math.exp(-self.capacity(net) / self.scale))

    def evaluate(self, encoding: str, workdir: pathlib.Path | None = None) -> float:
        net = parse_encoding(encoding)
        key = str(net)
        if self.delay:
            import time
            time.sleep(self.delay)
        noise = self.noise * _unit_normal(self.seed, key)
        half = self.max_violation / 2.0
        noise = max(-half, min(half, noise))
        return min(max(self.clean_accuracy(net) + noise, 0.0), 1.0)


def make_evaluator(spec: str) -> Evaluator:
    """``surrogate[:seed=N,noise=F,max_violation=F]``, ``csv:PATH[#COLUMN]`` or ``module:Class``."""
    if spec.startswith("surrogate"):
        kwargs = {}
        rest = spec[len("surrogate"):].lstrip(":")
        for item in filter(None, rest.split(",")):
            name, _, value = item.partition("=")
            if name not in ("seed", "noise", "max_violation", "floor", "ceiling", "scale", "delay"):
                raise EvaluationError(f"evaluator {spec!r}: unknown surrogate option {name!r}")
            try:
                kwargs[name] = int(value) if name == "seed" else float(value)
            except ValueError:
                raise EvaluationError(f"evaluator {spec!r}: {name}={value!r} is not a number")
        return Surrogate(**kwargs)
    if spec.startswith("csv:"):
        path, _, column = spec[4:].partition("#")
        return CsvReplay(pathlib.Path(path), column or None)
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise EvaluationError(f"evaluator {spec!r}: cannot load ({e})")
        return cls()
    raise EvaluationError(f"evaluator {spec!r}: expected surrogate[:opts], csv:PATH or module:Class")


# ----------------------------------------------------------------------------- trust
ENTRY_POINT_GROUP = "dfseg.evaluators"


class UntrustedEvaluator(EvaluationError):
    """A study asks for an evaluator that is none of the package's own; the message says how
    to allow it."""


def trusted_evaluators() -> set[str]:
    """``module:Class`` names of the evaluators installed distributions declare as their own
    (entry-point group ``dfseg.evaluators``; read from the metadata, nothing imported)."""
    return {f"{ep.module}:{ep.attr}" for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.attr}


def is_trusted(spec: str) -> bool:
    """Whether :func:`make_evaluator` may build ``spec`` when a study, not the user, names it:
    the forms it parses itself (``surrogate…``, ``csv:PATH``, and a text without ``:``, which is
    its one-line error) or a registered ``module:Class``."""
    if spec.startswith("surrogate") or spec.startswith("csv:") or ":" not in spec:
        return True
    return spec in trusted_evaluators()


def stored_evaluator(spec: str, study: str) -> Evaluator:
    """The evaluator a study stores, for a worker given none of its own; refused (nothing
    imported) when it is not one of the package's own."""
    if not isinstance(spec, str) or not is_trusted(spec):
        allow = shlex.quote(spec) if isinstance(spec, str) and spec.isprintable() else "MODULE:CLASS"
        raise UntrustedEvaluator(
            f"study {study!r} asks for the evaluator {spec!r}, which is not one of dfseg's own "
            f"(surrogate, csv:FILE, {', '.join(sorted(trusted_evaluators())) or 'no registered module:Class'}); "
            f"if you trust it, run the worker with --evaluator {allow}")
    return make_evaluator(spec)
