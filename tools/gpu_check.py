"""`make gpu-check`: every GPU check of dfseg in one command, with a JSON summary.

    python -m tools.gpu_check [--out bench/gpu_check.json] [--gpu 0] [--budget 570]
        [--iterations 50] [--rounds 5] [--hw 1024x2048]

Checks, each in a process of its own (a CUDA error aborts Caffe: it fails one check, not the run):
- ``layers``: our CUDA Interp / Upsample / ShuffleChannel against the CPU layer of the same
  library, forward and backward, within 1e-5 (tools.gpu.layers);
- ``gradients``: the CUDA backward of each against central differences of the CUDA forward;
- ``nets``: DF1-Seg and ICNet (random weights, 1024x2048 / 1025x2049) in pycaffe, CPU against
  GPU forward, within 1e-4 of the largest output;
- ``caffe-time``: ``caffe time -gpu N``, DF1-Seg against ICNet in interleaved rounds
  (tools.engines.protocol.compare), the FPS ratio with its 95 % interval beside the paper's
  Titan X figures (30.7 against 30.3);
- ``tensorrt``: TensorRT FP32 against ONNX Runtime within 1e-3 for both nets, then DF1-Seg
  against ICNet on TensorRT FP32 (CUDA events) beside the paper's 1080 Ti figure;
- ``torch``: the GPU kit (tools.gpu.kit_build, built into build/gpu-kit) run by its own run.py with
  this Python's PyTorch: the DF-Seg nets and ICNet as plain PyTorch modules, GPU against CPU
  within 1e-4 (FP32), then timed in interleaved rounds, FP32 and FP16 (CUDA events).

What it cannot run (no GPU, no ``make caffe-gpu`` build, no TensorRT, no ICNet reference
prototxt, no PyTorch or one that sees no GPU, out of time) is skipped with the reason.  Without
a GPU it says so, writes the summary with every check skipped and exits 0.  Exit 1 when a check
failed.  The checks are tools.gpu.checks (each run by ``python -m tools.gpu_runs``), the runner
tools.gpu.host; their times are timing records (tools.report.timings).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import parse_hxw
from tools.gpu.host import CHECKS, check_all

__all__ = ["CHECKS", "main"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "gpu_check.json"
#: the command that runs one check in a process of its own
CHILD = [sys.executable, "-m", "tools.gpu_runs"]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON summary")
    parser.add_argument("--gpu", type=int, default=0, help="CUDA device index")
    parser.add_argument("--budget", type=float, default=570.0,
                        help="seconds for all checks together (default: under 10 minutes)")
    parser.add_argument("--iterations", type=int, default=50, help="timed passes per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--hw", type=parse_hxw, default=(1024, 2048),
                        help="test size HxW (ICNet runs at the next 32k+1)")
    return parser


def _progress(name: str, result: dict | None) -> None:
    if result is None:
        print(f"gpu_check: running {name} ...", file=sys.stderr, flush=True)
    else:
        print(f"{result['status'].upper():4}  {name}: {result['detail']}", flush=True)


def _run(args) -> int:
    if args.iterations < 1 or args.rounds < 1 or args.budget <= 0:
        raise CliError("--iterations, --rounds and --budget must be positive")
    summary = check_all(args, CHILD, _progress)
    atomic_write_text(args.out, json.dumps(summary, indent=2) + "\n")
    if summary["gpu"] is None:
        print(f"gpu_check: {summary['no_gpu_reason']}: skipped all {summary['skipped']} checks "
              f"(summary: {args.out})")
        return 0
    if summary["paper"]:
        p = summary["paper"]
        print(f"paper: Titan X caffe time {p['titanx_caffe_fps']}, 1080 Ti TensorRT "
              f"{p['1080ti_tensorrt_fps']} (FPS)")
    print(f"gpu_check: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} skipped on {summary['gpu']['name']} (summary: {args.out})")
    return 1 if summary["failed"] else 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.gpu_check"
    return run_cli(lambda: _run(_parser(prog).parse_args(argv)), prog)


if __name__ == "__main__":
    sys.exit(main())
