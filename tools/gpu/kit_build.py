"""The GPU kit (docs/gpu.md, "The GPU kit"): a folder of a few hundred kB to copy to any CUDA
machine that has Python, NumPy and PyTorch, which checks and times DF1-Seg against ICNet there.

:func:`build_kit` gives every file of the kit, :func:`write_kit` writes them (all or none):
- one plain PyTorch module per net and size (tools.export.torch_convert; no weights files:
  run.py makes its own): DF1-Seg, DF1-Seg-d8, DFlite-Seg, DF2-Seg1, DF2-Seg2 as the merged-BN
  nets `caffe time` runs (tools.models.registry.timing_net: what the paper and `make bench`
  time), and ICNet's merged-BN evaluation net.  At the first timing size they are OUT/df1seg.py
  ... OUT/icnet.py; at every other size OUT/HxW/<net>.py.  One module per size because the
  Caffe nets fix their pyramid-pooling windows and Interp sizes for the input they are made
  for; DF-Seg runs at the next multiple of 32, ICNet at the next 32k+1 (1024x2048 -> 1025x2049);
- kit.json: per net its paper name, modules, the size each is timed at, the paper's Titan X
  (Caffe) and 1080 Ti (TensorRT) FPS where the paper gives them (tools.report.paper);
- run.py and gpu_kit_core.py: the files of tools/gpu/kit/ as they are (Python >= 3.10, NumPy,
  PyTorch >= 2.4 only: no dfseg there).
"""
from __future__ import annotations

import json
from pathlib import Path

from dfseg.base.atomic import atomic_write_group
from dfseg.base.sizes import format_hxw
from tools.export.reference_nets import RELEASE_SEG_SIZE as FULL_HW
from tools.export.torch_convert import MIN_TORCH, convert
from tools.models.registry import ICNET, display_name, run_size, timing_net
from tools.report.paper import kit_figures, paper_tables_path, read_paper_tables

__all__ = ["CHECK_HW", "FULL_HW", "KIT_NETS", "MIN_SIDE", "RUNNER", "build_kit", "write_kit"]

#: the kit's own code, copied as it is: run.py and the measuring parts it loads from beside it
KIT_SOURCES = Path(__file__).resolve().with_name("kit")
RUNNER = {name: KIT_SOURCES / name for name in ("run.py", "gpu_kit_core.py")}
#: the nets of the kit, DF1-Seg and ICNet (the head-to-head) first
KIT_NETS = ("df1seg", ICNET, "df1seg_d8", "dflite_seg", "df2seg1", "df2seg2")
#: small enough that the CPU reference pass costs little, large enough that every stage of
#: DF-Seg (1/32: 8x16) and ICNet's 1/32 branch (9x17) still has more than one position
CHECK_HW = (256, 512)
MIN_SIDE = 64
KIT_FORMAT = 1
MADE_BY = "dfseg: make gpu-kit (docs/gpu.md, 'The GPU kit')"


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
    figures_path = paper_tables_path()
    figures = kit_figures(read_paper_tables(figures_path))
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
        "made_by": MADE_BY,
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


def write_kit(out: Path, sizes: list[tuple[int, int]]) -> dict[Path, str]:
    """Build the kit for the timing `sizes` (the first is run.py's default) and write it into
    `out`, every file or none; returns {path: content}."""
    files = build_kit(out, sizes)
    for folder in sorted({path.parent for path in files}):
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write_group(files)
    return files
