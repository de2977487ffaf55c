"""`make gpu-kit`: a folder of a few hundred kB to copy to any CUDA machine that has Python,
NumPy and PyTorch, which checks and times DF1-Seg against ICNet there (docs/gpu.md, "The GPU
kit").

    python -m tools.gpu_kit --out build/gpu-kit [--sizes 1024x2048[,HxW...]]

Writes into OUT, all files or none (dfseg.base.atomic.atomic_write_group):
- one plain PyTorch module per net and size (tools.export.torch_convert; no weights files:
  run.py makes its own): DF1-Seg, DF1-Seg-d8, DFlite-Seg, DF2-Seg1, DF2-Seg2 as the merged-BN
  nets `caffe time` runs (tools.registry.timing_net: what the paper and `make bench` time), and
  ICNet's merged-BN evaluation net.  At the first timing size they are OUT/df1seg.py ...
  OUT/icnet.py; at every other size OUT/HxW/<net>.py.  One module per size because the Caffe
  nets fix their pyramid-pooling windows and Interp sizes for the input they are made for;
  DF-Seg runs at the next multiple of 32, ICNet at the next 32k+1 (1024x2048 -> 1025x2049);
- kit.json: per net its paper name, modules, the size each is timed at, the paper's Titan X
  (Caffe) and 1080 Ti (TensorRT) FPS where the paper gives them;
- run.py and gpu_kit_core.py: tools/gpu_kit_run.py and tools/gpu_kit_core.py as they are
  (Python >= 3.10, NumPy, PyTorch >= 2.4 only).

--sizes lists the timing sizes (default 1024x2048, the head-to-head); the check size 256x512
(ICNet 257x513) is always added.  Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prototxt_gen.models import UnknownModelError
from dfseg.base.atomic import atomic_write_group
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import SizeError, format_hxw, parse_hxw
from dfseg.base.textfile import TextFileError, read_yaml
from tools.export.caffe_net import CaffeNetError
from tools.export.netparam import NetDefinitionError
from tools.export.reference_nets import RELEASE_SEG_SIZE as FULL_HW
from tools.export.torch_convert import MIN_TORCH, convert
from tools.registry import ICNET, RegistryError, display_name, reference_root, run_size, timing_net

PROG = "gpu_kit"
#: the kit's own code, copied as it is: run.py and the measuring parts it loads from beside it
RUNNER = {"run.py": Path(__file__).resolve().with_name("gpu_kit_run.py"),
          "gpu_kit_core.py": Path(__file__).resolve().with_name("gpu_kit_core.py")}
#: the nets of the kit, DF1-Seg and ICNet (the head-to-head) first
KIT_NETS = ("df1seg", ICNET, "df1seg_d8", "dflite_seg", "df2seg1", "df2seg2")
#: small enough that the CPU reference pass costs little, large enough that every stage of
#: DF-Seg (1/32: 8x16) and ICNet's 1/32 branch (9x17) still has more than one position
CHECK_HW = (256, 512)
MIN_SIDE = 64
KIT_FORMAT = 1


def _parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):   # one line, as every dfseg CLI (run_cli prints it)
            raise CliError(message)

    ap = Parser(prog="python -m tools.gpu_kit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="the kit folder to write")
    ap.add_argument("--sizes", default=format_hxw(FULL_HW),
                    help="timing sizes HxW, comma-separated (default 1024x2048); the first is "
                         "run.py's default; the check size 256x512 is always added")
    return ap


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        try:
            hw = parse_hxw(part)
        except SizeError as err:
            raise CliError(f"--sizes: {err}") from None
        if min(hw) < MIN_SIDE:
            raise CliError(f"--sizes: {format_hxw(hw)} is too small (each side at least {MIN_SIDE})")
        sizes.append(hw)
    return list(dict.fromkeys(sizes))


def paper_figures(path: Path) -> dict[str, dict]:
    """{paper name: {"titanx_caffe_fps", "gtx1080ti_tensorrt_fps"}} at 1024x2048 (ICNet
    1025x2049): the release README's segmentation table, then Table 3 for what it lacks
    (ICNet's Caffe figure; the paper gives no TensorRT figure for ICNet)."""
    tables = read_yaml(path, "paper tables (YAML)", mapping=True)
    figures: dict[str, dict] = {}
    for row in tables.get("release_segmentation") or []:
        figures.setdefault(row["model"], {}).update(
            titanx_caffe_fps=row.get("fps_titanx_caffe"),
            gtx1080ti_tensorrt_fps=row.get("fps_1080ti_1024x2048"))
    for row in tables.get("table3_1080ti") or []:
        slot = figures.setdefault(row["model"], {})
        if slot.get("titanx_caffe_fps") is None:
            slot["titanx_caffe_fps"] = row.get("fps_caffe")
        if slot.get("gtx1080ti_tensorrt_fps") is None:
            slot["gtx1080ti_tensorrt_fps"] = row.get("fps")
    return figures


def _module_source(model: str, hw: tuple[int, int]) -> tuple[str, dict]:
    """(the module's source, its kit.json entry) of `model` asked at `hw`."""
    net, run_hw = timing_net(model, hw)
    if model == ICNET:
        origin = (f"ICNet's Cityscapes evaluation net (icnet/icnet_cityscapes.prototxt of the "
                  f"reference material), BN merged, at {format_hxw(run_hw)}, as dfseg times it")
    else:
        origin = f"dfseg's {model}, the merged-BN net `caffe time` runs, at {format_hxw(run_hw)}"
    module = convert(net, None, origin=origin)
    return module.source, {"run_hw": format_hxw(run_hw), "outputs": list(module.outputs)}


def build_kit(out: Path, sizes: list[tuple[int, int]]) -> dict[Path, str]:
    """{path: content} of every file of the kit."""
    figures_path = reference_root() / "paper_tables.yaml"
    figures = paper_figures(figures_path) if figures_path.is_file() else {}
    all_sizes = list(dict.fromkeys([*sizes, CHECK_HW]))
    files: dict[Path, str] = {}
    nets = []
    for model in KIT_NETS:
        name = display_name(model)
        modules = {}
        for i, hw in enumerate(all_sizes):
            file = f"{model}.py" if i == 0 else f"{format_hxw(hw)}/{model}.py"
            source, entry = _module_source(model, hw)
            files[out / file] = source
            modules[format_hxw(hw)] = {"file": file, **entry}
        paper = figures.get(name)
        nets.append({"key": model, "name": name, "modules": modules,
                     "timed_at": modules[format_hxw(sizes[0])]["run_hw"],
                     "paper": ({"size": format_hxw(run_size(model, FULL_HW)), **paper}
                               if paper else None)})
    kit = {
        "format": KIT_FORMAT,
        "made_by": "dfseg: python -m tools.gpu_kit (docs/gpu.md, 'The GPU kit')",
        "runner": "run.py: python >= 3.10, numpy, torch >= " + MIN_TORCH,
        "timing_size": format_hxw(sizes[0]),
        "icnet_timing_size": format_hxw(run_size(ICNET, sizes[0])),
        "check_size": format_hxw(CHECK_HW),
        "sizes": [format_hxw(hw) for hw in all_sizes],
        "size_rule": "DF-Seg runs at the next multiple of 32 of a size, ICNet at the next 32k+1",
        "paper_source": (f"paper_tables.yaml of the reference material: release README "
                         f"segmentation table (Titan X `caffe time`, 1080 Ti TensorRT 3.0.4 at "
                         f"1024x2048), Table 3 for ICNet" if figures else
                         f"not found ({figures_path}): no paper figures"),
        "nets": nets,
    }
    files[out / "kit.json"] = json.dumps(kit, indent=2) + "\n"
    for name, source in RUNNER.items():
        files[out / name] = source.read_text(encoding="utf-8")
    return files


def _run(argv) -> int:
    args = _parser().parse_args(argv)
    sizes = parse_sizes(args.sizes)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"{args.out}: exists and is not a folder")
    files = build_kit(args.out, sizes)
    for folder in sorted({path.parent for path in files}):
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write_group(files)
    total = sum(path.stat().st_size for path in files)
    print(f"{args.out}: GPU kit of {len(KIT_NETS)} nets at {', '.join(format_hxw(s) for s in sizes)} "
          f"(check at {format_hxw(CHECK_HW)}), {len(files)} files, {total / 1e3:.0f} kB; on a CUDA "
          f"machine with torch and numpy: python {args.out / 'run.py'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _run(argv), PROG,
                   expected=(RegistryError, CaffeNetError, NetDefinitionError, TextFileError,
                             UnknownModelError))


if __name__ == "__main__":
    sys.exit(main())
