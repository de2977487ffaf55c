"""``dfseg``: one command for every job of the package, listed in the order of the paper's
workflow (build the nets, search, data, train, measure, convert, report).

``dfseg NAME ARGS...`` imports the module that does NAME only then, so ``dfseg --help`` loads
no torch, Caffe or ONNX, and calls its ``main(ARGS, prog="dfseg NAME")``.  ``python -m MODULE``,
the ``pop`` script and the make targets reach the same ``main``: one job, one place.

Exit status, as every dfseg command gives it (``dfseg.base.cli.run_cli``): 0 done, 1 a bug
(``--debug`` shows its traceback), 2 bad input (one line on stderr), 130 interrupted.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata

from dfseg.base.cli import run_cli

__all__ = ["COMMANDS", "Command", "GROUPS", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    name: str      # what users type after `dfseg`
    module: str    # the command module whose main(argv, prog) does the job
    summary: str   # one line of `dfseg --help`


def _group(title: str, *rows: tuple[str, str, str]) -> tuple[str, tuple[Command, ...]]:
    return title, tuple(Command(*row) for row in rows)


GROUPS = (
    _group("build the nets",
           ("generate", "prototxt_gen.__main__",
            "every prototxt form of a model, from its name or its encoding"),
           ("analyze", "tools.analyze", "shapes, parameters, MACs and Caffe's memory of a net"),
           ("compare", "tools.compare_prototxt", "two prototxts compared layer for layer, field for field")),
    _group("search (Partial Order Pruning)",
           ("pop", "pop.__main__", "latency table, search space, Algorithm 1, workers, report "
                                   "(dfseg pop --help)")),
    _group("data",
           ("data", "tools.lmdb_tools", "image folders and list files -> Caffe LMDBs; check an LMDB"),
           ("cityscapes", "tools.cityscapes_data", "Cityscapes on disk -> training lists or LMDB pairs")),
    _group("train and evaluate",
           ("solver", "solvers.solver_gen", "a solver prototxt from a recipe (imagenet, cityscapes)"),
           ("train", "solvers.runner", "train through pycaffe: snapshots, resume, curves, divergence stop"),
           ("evaluate", "solvers.evaluate", "top-1 / top-5 accuracy of a classifier"),
           ("cityscapes-eval", "tools.cityscapes_eval", "Cityscapes IoU / nIoU of predictions (the official report)"),
           ("pop-demo", "solvers.pop_demo", "a real POP search on this CPU: digits, pycaffe training, Caffe LUT"),
           ("pop-table", "solvers.pop_table", "every model of the demo's space trained under two seeds: the table "
                                              "pop-bench replays"),
           ("seg-smoke", "solvers.seg_smoke", "DF-Seg trained and evaluated on a synthetic Cityscapes-layout set"),
           ("digits", "solvers.digits", "scikit-learn's handwritten digits as train / val LMDBs")),
    _group("measure",
           ("time", "tools.caffe_time", "`caffe time` of a net, or its log, as a table"),
           ("bench", "tools.bench", "DF-Seg nets against ICNet on caffe time, OpenCV DNN, PyTorch"),
           ("bench-paper", "tools.paper_bench", "Tables 1, 3, 4, 5 and Fig. 1 measured here: caffe time, "
                                                "OpenCV DNN, ONNX Runtime"),
           ("ort-bench", "tools.ort_bench", "ONNX Runtime CPU latency of the DF-Seg nets and ICNet"),
           ("tensorrt-bench", "tools.tensorrt_bench", "TensorRT FP32 / FP16 latency and per-layer profile (GPU)"),
           ("gpu-check", "tools.gpu_check", "every GPU check in one command, with a JSON summary"),
           ("gpu-kit", "tools.gpu_kit", "a small folder that times DF1-Seg against ICNet on any CUDA machine"),
           ("pop-bench", "pop.bench", "does pruning pay: POP against random and Optuna's samplers on a large space"),
           ("bench-distributed", "pop.bench_distributed",
            "8 POP workers on PostgreSQL under kills, a server restart and a full disk")),
    _group("convert",
           ("merge-bn", "tools.merge_bn", "fold BatchNorm + Scale into the convolutions (net + weights)"),
           ("to-onnx", "tools.to_onnx", "Caffe net + weights -> ONNX, with Caffe's arithmetic"),
           ("to-torch", "tools.to_torch", "Caffe net + weights -> a plain PyTorch module and its weights")),
    _group("report",
           ("tables", "tools.tables", "the paper's tables from logs, beside what was measured here"),
           ("parse-log", "tools.parse_log", "the figures of a caffe time, TensorRT profile or caffe test log")),
    _group("set up",
           ("caffe", "tools.caffe_locate", "where the Caffe dfseg runs on is, or why there is none")),
)

COMMANDS = {command.name: command for _, commands in GROUPS for command in commands}

INTRO = """\
DF-Seg and Partial Order Pruning (Li, Zhou, Pan, Feng, CVPR 2019) reproduced on Caffe.  The
commands follow the paper's workflow; `{prog} COMMAND --help` shows a command's own options.
"""

EPILOG = """\
exit status: 0 done, 1 a bug (rerun with --debug for its traceback), 2 bad input (one line on
stderr says what), 130 interrupted.  More in docs/cli.md.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line (as every dfseg command gives it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_table() -> str:
    width = max(map(len, COMMANDS)) + 2
    blocks = []
    for title, commands in GROUPS:
        rows = [f"  {c.name:<{width}}{c.summary}" for c in commands]
        blocks.append(f"{title}:\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def _version() -> str:
    try:
        return metadata.version("dfseg")
    except metadata.PackageNotFoundError:   # run from a checkout that pip never installed
        return "unknown (not installed)"


def build_parser(prog: str = "dfseg") -> argparse.ArgumentParser:
    """The parser of the global flags; the command table is its description."""
    parser = _Parser(prog=prog, usage="%(prog)s [-h] [--version] [--debug] COMMAND [ARGS ...]",
                     description=INTRO.format(prog=prog) + "\n" + _command_table(), epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback when a command fails with a bug (sets DFSEG_DEBUG=1)")
    return parser


def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global flags, command name, the command's own arguments): everything after the name
    belongs to the command, so `dfseg analyze --help` is analyze's help, not dfseg's."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1
    if i == len(argv):
        return argv, None, []
    return argv[:i], argv[i], argv[i + 1:]


def _find(name: str, parser: argparse.ArgumentParser) -> Command:
    if name in COMMANDS:
        return COMMANDS[name]
    close = difflib.get_close_matches(name, list(COMMANDS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    parser.error(f"unknown command {name!r}{hint}")


def _call(command: Command, argv: list[str], prog: str) -> int | None:
    code = importlib.import_module(command.module).main(argv, prog=prog)
    # a reader that closed the pipe (`| head -1`) shows here, inside run_cli, rather than in
    # Python's flush at exit, which would print "Exception ignored"
    sys.stdout.flush()
    return code


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``dfseg [--debug] NAME ARGS...``: run command NAME with ARGS."""
    prog = prog or "dfseg"
    # the help itself goes through run_cli too: `dfseg --help | head -1` ends quietly
    return run_cli(lambda: _dispatch(list(sys.argv[1:] if argv is None else argv), prog), prog=prog)


def _dispatch(argv: list[str], prog: str) -> int | None:
    flags, name, rest = _split(argv)
    parser = build_parser(prog)
    options = parser.parse_args(flags)   # --help and --version exit here
    if name is None:
        parser.print_help(sys.stderr)
        return 2
    if options.debug:   # the environment, so commands in child processes show theirs too
        os.environ["DFSEG_DEBUG"] = "1"
    command = _find(name, parser)
    return run_cli(lambda: _call(command, rest, f"{prog} {name}"), prog=f"{prog} {name}")
