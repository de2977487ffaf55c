"""The ``pop`` command line: one small builder per subcommand."""
from __future__ import annotations

import argparse
import pathlib

from dfseg.base.cli import nonnegative_seconds_argument

from .commands import (cmd_lut_build, cmd_lut_decoder, cmd_lut_validate, cmd_optuna, cmd_report, cmd_search, cmd_space, cmd_worker)
from .reconnect import DEFAULT_WINDOW

DESCRIPTION = """\
Partial Order Pruning (POP, Li et al., CVPR 2019): search the architectures whose latency
lies in [Tmin, Tmax] for the best speed/accuracy trade-off.  Latency is estimated from a
look-up table of block latencies (Lat(x) = stem + sum of blocks + head); the partial order
"shallower or narrower is less accurate" prunes every model that is slower than a known
model at least as accurate, so far fewer models need training.
"""

# the subcommand table of --help, laid out for whatever name the command runs under
SUBCOMMANDS = (
    ("space", "enumerate the search space S^ and report its size"),
    ("lut build", "profile every block configuration on this machine (incremental)"),
    ("lut validate", "compare estimated and measured whole-network latencies (Fig. 3a)"),
    ("lut decoder", "profile the decoder settings [C3,C4,C5] of a fixed backbone"),
    ("search", "run Algorithm 1 (creates the study, trains with one worker)"),
    ("worker", "join a study as one more worker (e.g. on PostgreSQL)"),
    ("optuna", "Optuna's NSGA-II (or TPE, random) on S^, skipping the models the partial\n"
               "order settles; same space, storage and evaluators as pop search"),
    ("report", "boundary table and Fig. 5, 7, 8a, 8b plots, one HTML page"),
)


def _description(prog: str) -> str:
    width = max(len(f"{prog} {name}") for name, _ in SUBCOMMANDS) + 3
    rows = []
    for name, text in SUBCOMMANDS:
        first, *more = text.split("\n")
        rows.append(f"  {f'{prog} {name}':<{width}}{first}")
        rows += [f"  {'':<{width}}{line}" for line in more]
    return DESCRIPTION + "\n" + "\n".join(rows) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and `pop X --help` still shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _space_args(p: argparse.ArgumentParser, lut_required: bool = True) -> None:
    g = p.add_argument_group("search space S^")
    g.add_argument("--space", type=pathlib.Path, help="YAML file: stages (block, widths, min/max_depth), "
                   "input_size, num_classes, latency_ms [Tmin, Tmax]")
    g.add_argument("--block", choices=["basic", "bottleneck"], help="block type of every stage (without --space)")
    g.add_argument("--widths", help="width choices, comma separated (default: the paper's 64,128,256,512,1024)")
    g.add_argument("--max-depth", help="maximum blocks per stage, e.g. 4,6,4")
    g.add_argument("--input-size", help="input resolution HxW, e.g. 224x224")
    g.add_argument("--num-classes", type=int, help="classifier outputs (default 1000)")
    g.add_argument("--latency", help="latency window Tmin,Tmax in ms (overrides the file)")
    if lut_required:
        p.add_argument("--lut", type=pathlib.Path, required=True, help="latency look-up table (JSON)")
        p.add_argument("--allow-foreign-lut", action="store_true",
                       help="use a LUT measured on another platform (e.g. the deployment device)")



def _add_space(sub) -> None:
    s = sub.add_parser("space", help="enumerate S^: architectures with estimated latency in [Tmin, Tmax]")
    _space_args(s)
    s.add_argument("--json", type=pathlib.Path, help="also write size and time as JSON")
    s.set_defaults(func=cmd_space)


def _add_lut(sub) -> None:
    lut = sub.add_parser("lut", help="latency look-up table: build, validate, decoder")
    lsub = lut.add_subparsers(dest="lut_command", required=True, parser_class=_Parser)
    for name, func, helptext in (("build", cmd_lut_build, "profile each distinct block configuration (only missing keys)"),
                                 ("validate", cmd_lut_validate, "profile N whole networks and compare with the LUT estimate")):
        q = lsub.add_parser(name, help=helptext)
        _space_args(q, lut_required=False)
        q.add_argument("--lut", type=pathlib.Path, required=True, help="LUT file (JSON); created or extended")
        q.add_argument("--backend", default="caffe", help="caffe | caffe-time | opencv | onnxruntime | torch | tensorrt")
        q.add_argument("--threads", type=int, default=1, help="CPU threads of the engine")
        q.add_argument("--iterations", type=int, default=20, help="timed forward passes per measurement")
        if name == "build":
            q.add_argument("--calibrate", type=int, default=10, metavar="N",
                           help="time N whole nets spread over the space to fit the table's scale and "
                           "per-part overhead (0: skip)")
        if name == "validate":
            q.add_argument("-n", type=int, default=20, help="number of random architectures")
            q.add_argument("--seed", type=int, default=0)
            q.add_argument("--out", type=pathlib.Path, default=pathlib.Path("pop_lut_validate"))
            q.add_argument("--repeats", type=int, default=3, help="times the check runs (its spread is reported)")
            q.add_argument("--no-busy", action="store_true",
                           help="skip the extra run with a second process busy on another core")
        q.set_defaults(func=func)

    q = lsub.add_parser("decoder", help="profile each decoder setting [C3,C4,C5] of a fixed backbone "
                        "(whole DF-Seg nets) and write the decoder space for `pop search --decoder`")
    q.add_argument("--backbone", required=True, help="backbone encoding, e.g. \"[(64,64,64),(128,128,128),(256,256,256,512)]\"")
    q.add_argument("--num-classes", type=int, default=19)
    q.add_argument("--wc-choices", default="K,32,64,128,256,512", help="width-controller choices (K = classes)")
    q.add_argument("--input-size", default="1024x2048", help="HxW of the profiled nets")
    q.add_argument("--d8", action="store_true", help="the -d8 head (no final x8 up-sampling)")
    q.add_argument("--out", type=pathlib.Path, required=True, help="decoder space YAML (created or extended)")
    q.add_argument("--backend", default="caffe", help="caffe | caffe-time | opencv | onnxruntime | torch | tensorrt")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--iterations", type=int, default=10)
    q.set_defaults(func=cmd_lut_decoder)


def _reconnect_window(q) -> None:
    q.add_argument("--reconnect-window", type=nonnegative_seconds_argument, default=DEFAULT_WINDOW, metavar="SECONDS",
                   help="how long a worker waits for a lost database (a restart, a failover) before it stops "
                   f"with one line; completed trials are kept either way (default {DEFAULT_WINDOW:g})")


def _common_search(q) -> None:
    q.add_argument("--storage", default="sqlite:///pop.db",
                   help="Optuna storage URL: sqlite:///FILE (one process) or postgresql://USER@HOST/DB (many workers)")
    q.add_argument("--study", default="pop", help="study name")
    q.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("pop_runs"), help="where trainings write")
    q.add_argument("--poll", type=float, default=1.0, help="seconds between looks when all candidates are claimed")
    q.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_search(sub) -> None:
    s = sub.add_parser("search", help="Algorithm 1: sample from S^ minus the pruned set P, train, prune, "
                       "until the boundary B(D) is unchanged for K iterations")
    _space_args(s, lut_required=False)
    s.add_argument("--lut", type=pathlib.Path, help="latency look-up table (JSON)")
    s.add_argument("--allow-foreign-lut", action="store_true", help="use a LUT measured on another platform")
    s.add_argument("--decoder", type=pathlib.Path, help="decoder search: YAML with the backbone and per-setting "
                   "latencies of the width controllers [C3,C4,C5]")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampling order")
    s.add_argument("--patience", "-K", type=int, default=20, help="K: stop when B(D) is unchanged for K iterations")
    s.add_argument("--budget", type=int, help="stop after this many trained models")
    s.add_argument("--evaluator", default="surrogate",
                   help="surrogate[:seed=N,noise=F,max_violation=F] | csv:FILE[#COLUMN] | module:Class (e.g. solvers.pop_evaluator:CaffeEvaluator)")
    s.add_argument("--rule", choices=["pop", "noise-aware"], default="pop", help="pruning rule: the paper's, "
                   "or noise-aware (prune only past a margin estimated from trained pairs that violate the order)")
    s.add_argument("--margin-quantile", type=float, default=0.9, help="noise-aware rule: quantile of "
                   "Acc(m) - Acc(w) over trained pairs m < w used as the margin")
    s.add_argument("--sampling", choices=["uniform", "boundary"], default="uniform", help="where the next "
                   "model is drawn from S^ minus P: uniformly (the paper), or half the time next to the current "
                   "boundary (pop.sampling; about half the trainings on the bench)")
    s.add_argument("--local-share", type=float, default=0.5, help="boundary sampling: share of draws next to "
                   "the boundary, in (0, 1]")
    s.add_argument("--create-only", action="store_true", help="create the study and exit (then start `pop worker`s)")
    s.add_argument("--lease-timeout", type=float, default=600.0, help="seconds without heartbeat before a "
                   "worker's candidate is offered again")
    _common_search(s)
    _reconnect_window(s)
    s.set_defaults(func=cmd_search)


def _add_worker(sub) -> None:
    w = sub.add_parser("worker", help="join a study: train candidates until Algorithm 1 stops")
    w.add_argument("--evaluator", help="override the study's evaluator; needed to run a stored module:Class "
                   "that is not one of dfseg's own")
    w.add_argument("--heartbeat", type=float, help="seconds between liveness heartbeats (default timeout/5)")
    w.add_argument("--trace", type=pathlib.Path, help="append start/done events as JSON lines")
    _common_search(w)
    _reconnect_window(w)
    w.set_defaults(func=cmd_worker)


def _add_optuna(sub) -> None:
    o = sub.add_parser("optuna", help="Optuna's NSGA-II (or TPE, random) on S^; the partial order skips "
                       "the models it settles (trained, pruned, or being trained)")
    _space_args(o)
    o.add_argument("--sampler", choices=["nsga2", "tpe", "random"], default="nsga2")
    o.add_argument("--population", type=int, default=50, help="NSGA-II population size")
    o.add_argument("--order", choices=["noise-aware", "pop", "none"], default="noise-aware",
                   help="which pruning rule settles models (none: the plain sampler)")
    o.add_argument("--margin-quantile", type=float, default=0.9)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--budget", type=int, required=True, help="stop when the study holds this many trained models")
    o.add_argument("--evaluator", default="surrogate", help="as for pop search")
    _common_search(o)
    o.set_defaults(func=cmd_optuna)


def _add_report(sub) -> None:
    r = sub.add_parser("report", help="boundary table and plots (Fig. 5, 7, 8a, 8b) as PNG and one HTML page")
    r.add_argument("--storage", default="sqlite:///pop.db")
    r.add_argument("--study", default="pop")
    r.add_argument("--out", type=pathlib.Path, default=pathlib.Path("pop_report"))
    r.set_defaults(func=cmd_report)


def build_parser(prog: str = "pop") -> argparse.ArgumentParser:
    """The parser; ``prog`` is how usage lines name the command (``dfseg pop`` under ``dfseg``)."""
    p = _Parser(prog=prog, description=_description(prog),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for add in (_add_space, _add_lut, _add_search, _add_worker, _add_optuna, _add_report):
        add(sub)
    return p
