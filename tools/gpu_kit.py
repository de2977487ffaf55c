"""`make gpu-kit`: a folder of a few hundred kB to copy to any CUDA machine that has Python,
NumPy and PyTorch, which checks and times DF1-Seg against ICNet there (docs/gpu.md, "The GPU
kit").

    python -m tools.gpu_kit --out build/gpu-kit [--sizes 1024x2048[,HxW...]]

Writes into OUT, all files or none: one plain PyTorch module per net and size (DF1-Seg,
DF1-Seg-d8, DFlite-Seg, DF2-Seg1, DF2-Seg2 and ICNet), kit.json, and run.py with
gpu_kit_core.py (the files of tools/gpu/kit/ as they are); tools.gpu.kit_build says what each
holds.

--sizes lists the timing sizes (default 1024x2048, the head-to-head); the check size 256x512
(ICNet 257x513) is always added.  Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw, parse_hxw_list
from tools.gpu.kit_build import CHECK_HW, FULL_HW, KIT_NETS, MIN_SIDE, write_kit


def _parser(prog: str) -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):   # one line, as every dfseg CLI (run_cli prints it)
            raise CliError(message)

    ap = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="the kit folder to write")
    ap.add_argument("--sizes", default=format_hxw(FULL_HW),
                    help="timing sizes HxW, comma-separated (default 1024x2048); the first is "
                         "run.py's default; the check size 256x512 is always added")
    return ap


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = parse_hxw_list(text, "--sizes")
    small = [hw for hw in sizes if min(hw) < MIN_SIDE]
    if small:
        raise CliError(f"--sizes: {format_hxw(small[0])} is too small (each side at least {MIN_SIDE})")
    return sizes


def _run(argv, prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    sizes = parse_sizes(args.sizes)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"{args.out}: exists and is not a folder")
    files = write_kit(args.out, sizes)
    total = sum(path.stat().st_size for path in files)
    print(f"{args.out}: GPU kit of {len(KIT_NETS)} nets at {', '.join(format_hxw(s) for s in sizes)} "
          f"(check at {format_hxw(CHECK_HW)}), {len(files)} files, {total / 1e3:.0f} kB; on a CUDA "
          f"machine with torch and numpy: python {args.out / 'run.py'}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m tools.gpu_kit"
    return run_cli(lambda: _run(argv, prog), prog)


if __name__ == "__main__":
    sys.exit(main())
