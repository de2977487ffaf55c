"""A training run's snapshots: taking one, which are complete, which are sound to resume from.

A snapshot is Caffe's ``snap_iter_N.solverstate`` + ``snap_iter_N.caffemodel`` and the runner's
``snap_iter_N.done`` marker (written after both, renamed into place).  Caffe reads both files
with CHECKs: a truncated or foreign file (a full disk, a copy cut short) aborts the process
with SIGABRT instead of an error.  :func:`snapshot_problem` reads them in Python first —
the solver state, the weights it names, their blob shapes against the net being trained —
so a bad snapshot is named and the newest sound one is used.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Callable

from google.protobuf.message import DecodeError

from prototxt_gen import caffe_pb2
from tools.export.caffemodel import CaffemodelError, read_caffemodel
from dfseg.base.atomic import atomic_write_text

_SNAPSHOT_RE = re.compile(r"^snap_iter_(\d+)\.done$")

# layer name -> its parameter blobs' shapes, as the net being trained has them
ParamShapes = dict[str, list[tuple[int, ...]]]


def complete_snapshots(workdir: Path) -> list[int]:
    snap_dir = workdir / "snapshots"
    if not snap_dir.is_dir():
        return []
    iters = []
    for p in snap_dir.iterdir():
        m = _SNAPSHOT_RE.match(p.name)
        if m and (snap_dir / f"snap_iter_{m.group(1)}.solverstate").is_file():
            iters.append(int(m.group(1)))
    return sorted(iters)


def take_snapshot(solver, workdir: Path, keep: int) -> Path:
    solver.snapshot()
    snap_dir = workdir / "snapshots"
    it = solver.iter
    marker = snap_dir / f"snap_iter_{it}.done"
    atomic_write_text(marker, json.dumps({"iteration": it, "time": time.time()}))
    for old in complete_snapshots(workdir)[:-keep]:
        for suffix in (".done", ".caffemodel", ".solverstate"):
            (snap_dir / f"snap_iter_{old}{suffix}").unlink(missing_ok=True)
    return snap_dir / f"snap_iter_{it}.caffemodel"


def param_shapes(pycaffe_net) -> ParamShapes:
    return {name: [tuple(b.data.shape) for b in blobs] for name, blobs in pycaffe_net.params.items()}


def learnable_shapes(shapes: ParamShapes, net: caffe_pb2.NetParameter) -> list[tuple[int, ...]]:
    """Shapes of Caffe's learnable_params in order: every parameter blob, a blob shared by name
    (``param { name: ... }``) counted once, at its first owner."""
    specs = {layer.name: [p.name for p in layer.param] for layer in net.layer}
    seen, out = set(), []
    for layer, blob_shapes in shapes.items():
        names = specs.get(layer, [])
        for j, shape in enumerate(blob_shapes):
            name = names[j] if j < len(names) else ""
            if name:
                if name in seen:
                    continue
                seen.add(name)
            out.append(shape)
    return out


def _same(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals, legacy 4-D blobs included: equal once padded with 1s."""
    pad = lambda s: (1,) * (4 - len(s)) + tuple(s) if len(s) < 4 else tuple(s)
    return tuple(expected) == tuple(actual) or pad(expected) == pad(actual)


def weights_problem(path: Path, shapes: ParamShapes, every_layer: bool = True) -> str | None:
    """Why Caffe's CopyTrainedLayersFrom would abort on ``path`` (unreadable, a layer whose blobs
    do not fit), or with ``every_layer`` silently skip a layer of the net (a truncated file)."""
    try:
        weights = read_caffemodel(path)
    except CaffemodelError as e:
        return str(e)
    for layer, expected in shapes.items():
        if layer not in weights:
            if not every_layer:
                continue
            return f"{path}: no weights for layer {layer!r} (a truncated file?)"
        actual = [tuple(a.shape) for a in weights[layer]]
        if len(actual) != len(expected) or not all(map(_same, expected, actual)):
            return f"{path}: layer {layer!r} has blobs {actual}, the net needs {expected}"
    return None


def _state_problem(path: Path, it: int, learnable: list[tuple[int, ...]]) -> tuple[str | None, str]:
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(path.read_bytes())
    except (OSError, DecodeError) as e:
        return f"{path}: not a readable solver state ({getattr(e, 'strerror', None) or e})", ""
    if state.iter != it:
        return f"{path}: holds iteration {state.iter}, its name says {it}", ""
    history = [tuple(b.shape.dim) for b in state.history]
    n = len(learnable)
    # SGD-like solvers keep one history blob per learnable blob, Adam two: a whole multiple.
    fits = all(math.prod(b.shape.dim) == len(b.data) + len(b.double_data) for b in state.history)
    fits = fits and (len(history) % n == 0 and len(history) > 0 if n else not history)
    fits = fits and all(_same(learnable[i % n], h) for i, h in enumerate(history))
    if not fits:
        return (f"{path}: its {len(history)} history blobs do not fit the net's {n} parameter "
                "blobs (a truncated file?)"), ""
    return None, state.learned_net


def snapshot_problem(workdir: Path, it: int, shapes: ParamShapes,
                     learnable: list[tuple[int, ...]]) -> str | None:
    """None when snapshot ``it`` can be restored; else one line saying which file is bad and why."""
    snap_dir = workdir / "snapshots"
    problem, learned = _state_problem(snap_dir / f"snap_iter_{it}.solverstate", it, learnable)
    if problem:
        return problem
    weights = Path(learned) if learned else snap_dir / f"snap_iter_{it}.caffemodel"
    if not weights.is_file():
        return f"{weights}: missing (the solver state names it)"
    return weights_problem(weights, shapes)


def newest_sound_snapshot(workdir: Path, shapes: ParamShapes, learnable: list[tuple[int, ...]],
                          warn: Callable[[str], None]) -> int | None:
    """The newest complete snapshot that can be restored; each newer bad one is warned about."""
    for it in reversed(complete_snapshots(workdir)):
        problem = snapshot_problem(workdir, it, shapes, learnable)
        if problem is None:
            return it
        warn(f"warning: snapshot of iteration {it} is bad, not resuming from it: {problem}")
    return None
