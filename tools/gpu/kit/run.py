"""The GPU kit's runner (`run.py` in the folder `python -m tools.gpu_kit` writes): DF1-Seg against
ICNet, and the other DF-Seg nets beside them, checked and timed in plain PyTorch on any CUDA
machine.  Needs only Python >= 3.10, NumPy and PyTorch >= 2.4: nothing of dfseg, no Caffe, no
protobuf, no YAML, no network.

    python run.py [--device cuda|cuda:N|cpu] [--rounds 10] [--repeats 20] [--warmup W]
                  [--size 1024x2048] [--nets df1seg,icnet,...] [--seed 0] [--budget 240]
                  [--out gpu_check.json]

What it does, per net of kit.json (each a module generated from the Caffe net `caffe time` runs,
merged BN; ICNet from its Cityscapes evaluation net), with gpu_kit_core.py beside it:
1. weights: seeded random weights, calibrated in one CPU pass at the check size so that every
   convolution's output channel has unit spread and a mean in [0.5, 1.5] (core.calibrate);
2. check: the device's output against the CPU's float32 output on the same weights and input
   at the check size (256x512, ICNet 257x513): FP32 within 1e-4 of the largest CPU value (a
   failure makes the exit 1); FP16's difference is reported beside its 1e-2 guide, never failed;
3. timing at --size (default 1024x2048, ICNet 1025x2049) in interleaved rounds after warm-up,
   FP32 and (CUDA only) FP16: CUDA events with cudnn.benchmark on, or time.perf_counter on the
   CPU; per net the median, min and FPS, and the DF1-Seg/ICNet FPS ratio as the median of
   per-round ratios with a bootstrap 95 % interval over rounds.

Writes gpu_check.json beside this file (--out to change) and prints the table beside the paper's
Titan X (Caffe) and 1080 Ti (TensorRT) figures.  Without a CUDA GPU and without --device cpu it
says so in one line and exits 0.  Exit 1 when an FP32 check failed or the run itself failed (CUDA
out of memory, a driver error: one line, DFSEG_TRACEBACK=1 for the traceback), 2 on bad
arguments or an unusable kit.

A size is HxW (height x width).  The kit holds one module per net and size, because the Caffe
nets fix their pyramid-pooling windows and Interp sizes for the input they are made for: --size
must be one the kit holds (kit.json "sizes"; `python -m tools.gpu_kit --sizes` adds others).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

PROG = "run.py"
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 4)
DEFAULT_BUDGET_S = 240.0   # the timed rounds of all precisions together: the whole run stays < 5 min
CORE = "gpu_kit_core.py"   # the measuring parts, beside this file in the kit and in the package


def _dependencies():
    """(torch, gpu_kit_core, None) or (None, None, what is missing, in one line)."""
    try:   # the kit's only dependencies besides the standard library
        import numpy  # noqa: F401  (gpu_kit_core needs it: say so here, not in a traceback)
        import torch
    except ImportError as err:
        return None, None, f"{err.name or 'a dependency'} is not installed here: pip install torch numpy"
    path = Path(__file__).resolve().with_name(CORE)
    if not path.is_file():
        return None, None, f"{path} is missing: copy the whole kit folder"
    # loaded by path, not imported: the kit is no package (in dfseg, tools/gpu/kit is a folder of data)
    spec = importlib.util.spec_from_file_location("dfseg_gpu_kit_core", path)
    core = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = core
    spec.loader.exec_module(core)
    return torch, core, None


torch, core, _MISSING = _dependencies()


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # argparse's usage + error is two lines; the kit says one
        raise core.UsageError(message)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="DF1-Seg vs ICNet in PyTorch: output check and timing.")
    ap.add_argument("--device", default="cuda",
                    help="cuda (GPU 0), cuda:N or cpu (cpu compares the CPU with itself)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    ap.add_argument("--repeats", type=int, default=20, help="timed passes per net and round")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed passes per net first (default 10 on CUDA, 1 on the CPU)")
    ap.add_argument("--size", default=None, help="timing size HxW (default: the kit's, 1024x2048)")
    ap.add_argument("--nets", default=None, help="comma-separated kit names (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                    help="seconds for the timed rounds; more planned passes are cut to fit")
    ap.add_argument("--kit", type=Path, default=Path(__file__).resolve().parent,
                    help="the kit folder (default: this file's)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON result (default: gpu_check.json in the kit folder)")
    return ap


# ---------------------------------------------------------------- arguments and the kit

def parse_hxw(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]+)x([0-9]+)", text.strip()) if text.isascii() else None
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise core.UsageError(f"--size {text!r}: expected HxW with positive ASCII numbers, e.g. 1024x2048")
    return int(match.group(1)), int(match.group(2))


def read_kit(kit_dir: Path) -> dict:
    path = kit_dir / "kit.json"
    try:
        kit = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise core.UsageError(f"{path}: {err.strerror or err} (run.py reads the kit.json beside it; "
                              "`python -m tools.gpu_kit --out DIR` writes a kit)") from None
    except ValueError as err:
        raise core.UsageError(f"{path}: not a kit description ({err})") from None
    if not isinstance(kit, dict) or not isinstance(kit.get("nets"), list) or not kit["nets"]:
        raise core.UsageError(f"{path}: not a kit description (no nets)")
    return kit


def select_nets(kit: dict, names: str | None) -> list[dict]:
    known = {net["key"]: net for net in kit["nets"]}
    if names is None:
        return list(kit["nets"])
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if not wanted or unknown:
        raise core.UsageError(f"--nets {names!r}: the kit holds {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(wanted)]


def check_arguments(args, kit: dict) -> tuple[str, list[dict]]:
    """(timing size as kit.json names it, the nets); UsageError for anything wrong."""
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", args.device):
        raise core.UsageError(f"--device {args.device!r}: expected cuda, cuda:N or cpu")
    if args.rounds < 1 or args.repeats < 1 or (args.warmup is not None and args.warmup < 0):
        raise core.UsageError("--rounds and --repeats must be at least 1, --warmup at least 0")
    if not args.budget > 0:
        raise core.UsageError("--budget must be a positive number of seconds")
    size = kit["timing_size"] if args.size is None else "x".join(map(str, parse_hxw(args.size)))
    if size not in kit["sizes"]:
        raise core.UsageError(
            f"--size {size}: this kit holds {', '.join(kit['sizes'])} (the nets fix their pooling "
            f"and Interp sizes; `python -m tools.gpu_kit --sizes {size}` makes a kit with it)")
    return size, select_nets(kit, args.nets)


def no_gpu_line() -> str:
    why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
           else f"PyTorch (CUDA {torch.version.cuda}) finds no usable CUDA GPU")
    return (f"{PROG}: no CUDA GPU is visible ({why}); to run the same check and timing on the "
            f"CPU: python run.py --device cpu (slow at 1024x2048: add e.g. --size 256x512 "
            f"--rounds 3 --repeats 2)")


def use_device(device: str) -> None:
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise core.UsageError(f"--device {device}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
        torch.cuda.set_device(index)   # CUDA events record on the current device's stream
    # Caffe (and the paper's Maxwell Titan X) computes true FP32: TF32 off, so FP32 means FP32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # cuDNN picks its fastest algorithm per shape during warm-up (as TensorRT does at build time)
    torch.backends.cudnn.benchmark = True


# ---------------------------------------------------------------- the report

def write_json_atomically(path: Path, data: dict) -> None:
    """A temp file beside `path`, flushed to disk, then renamed: never half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio_text(ratio: dict) -> str:
    return f"{ratio['ratio']:.3f} [{ratio['ci95'][0]:.3f}, {ratio['ci95'][1]:.3f}]"


def table(result: dict, kit: dict) -> str:
    """The printed report: per net the check, the times and the paper's figures."""
    m, check, timing = result["machine"], result["check"], result["timing"]
    where = (f"{m['gpu']} (driver {m['driver']}, CUDA {m['cuda']}, cuDNN {m['cudnn']})"
             if m["gpu"] else f"the CPU ({m['cpu_threads']} threads)")
    lines = [f"dfseg GPU kit on {where}, torch {m['torch']}, Python {m['python']}",
             f"check: {m['device']} against CPU float32 at {check['size']}"
             + (" (the CPU against itself: equal by construction)" if check["trivial"] else "")]
    head = f"{'net':<12} {'size':>9}  {'fp32 diff':>9} {'fp16 diff':>9}"
    for precision in timing:
        head += f"  {precision + ' ms':>9} {precision + ' FPS':>9}"
    head += f"  | paper FPS: {'Titan X Caffe':>13} {'1080 Ti TensorRT':>16}"
    lines += [head, "-" * len(head)]
    kit_nets = {n["key"]: n for n in kit["nets"]}
    for key, row in check["nets"].items():
        paper = kit_nets[key].get("paper") or {}
        size = next(iter(timing.values()))["nets"][key]["size"] if timing else row["size"]
        line = (f"{kit_nets[key]['name']:<12} {size:>9}  {row['fp32']['scaled']:>9.1e}"
                f"{' ' if row['fp32']['ok'] else '!'}{_num(row.get('fp16', {}).get('scaled'), '.1e'):>8}")
        for entry in timing.values():
            line += f"  {entry['nets'][key]['median_ms']:>9.2f} {entry['nets'][key]['fps']:>9.1f}"
        line += (f"  | {'':>10} {_num(paper.get('titanx_caffe_fps'), '.1f'):>13} "
                 f"{_num(paper.get('gtx1080ti_tensorrt_fps'), '.1f'):>16}")
        lines.append(line)
    ratios = [f"{p} {_ratio_text(e['df1seg_over_icnet_fps'])}"
              for p, e in timing.items() if "df1seg_over_icnet_fps" in e]
    paper_ratio = result["paper"].get("df1seg_over_icnet_titanx_caffe")
    if ratios:
        lines.append(f"DF1-Seg / ICNet FPS ratio (median of rounds, 95 % interval): {'; '.join(ratios)}"
                     + (f"; paper, Titan X Caffe: {paper_ratio:.3f}" if paper_ratio else ""))
    lines.append(f"fp32 diff: largest |device - CPU| over the largest |CPU value|, limit "
                 f"{core.FP32_LIMIT:g} ('!' marks a failure); fp16 diff reported against a "
                 f"{core.FP16_GUIDE:g} guide, never failed")
    timed = next(iter(timing.values()))["nets"] if timing else {}
    papers = {k: kit_nets[k]["paper"] for k in timed if kit_nets[k].get("paper")}
    if any(p["size"] != timed[k]["size"] for k, p in papers.items()):
        by_size = {}
        for k, p in papers.items():
            by_size.setdefault(p["size"], []).append(kit_nets[k]["name"])
        most = max(by_size, key=lambda size: len(by_size[size]))
        others = "; ".join(f"{', '.join(names)} {size}" for size, names in by_size.items() if size != most)
        lines.append(f"note: the paper's figures are for {most}" + (f" ({others})" if others else "")
                     + "; these times are at another size")
    cut = [p for p, e in timing.items() if e["protocol"]["cut_to_budget"]]
    if cut:
        lines.append(f"note: {', '.join(cut)} rounds/repeats cut to fit --budget "
                     f"{result['settings']['budget_s']:g} s")
    return "\n".join(lines)


def paper_figures(nets: list[dict]) -> dict:
    paper = {n["key"]: n.get("paper") for n in nets}
    subject, baseline = (paper.get(core.SUBJECT) or {}), (paper.get(core.BASELINE) or {})
    if subject.get("titanx_caffe_fps") and baseline.get("titanx_caffe_fps"):
        paper["df1seg_over_icnet_titanx_caffe"] = subject["titanx_caffe_fps"] / baseline["titanx_caffe_fps"]
    return paper


# ---------------------------------------------------------------- the run

def run(args) -> int:
    kit = read_kit(args.kit)
    size, nets = check_arguments(args, kit)
    device, cuda = args.device, args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(no_gpu_line())
        return 0
    out = args.out or args.kit / "gpu_check.json"
    if not out.parent.is_dir():
        raise core.UsageError(f"--out {out}: folder {out.parent} does not exist")
    started = time.monotonic()
    use_device(device)
    precisions = ["fp32", "fp16"] if cuda else ["fp32"]
    prepared = core.prepare(nets, args.kit, kit["check_size"], size, args.seed)
    print(f"{PROG}: checking {device} against the CPU ...", file=sys.stderr, flush=True)
    check = core.run_checks(prepared, device, precisions)
    check.update(against="CPU float32, the same weights and input", size=kit["check_size"],
                 limits={"fp32": core.FP32_LIMIT, "fp16_guide": core.FP16_GUIDE},
                 fp16_counts=False, trivial=not cuda,
                 note="fp32 within the limit or the run fails (exit 1); fp16 reported, never failed"
                 if cuda else "--device cpu: the CPU compared with itself, equal by construction; "
                              "the check means something only on a GPU")
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    timing = core.run_timing(prepared, device, precisions, args.rounds, args.repeats, warmup,
                             args.seed, args.budget)
    result = {
        "kit": {"folder": str(args.kit), "sizes": kit["sizes"], "check_size": kit["check_size"],
                "made_by": kit.get("made_by")},
        "machine": core.describe_machine(device),
        "settings": {"device": device, "timing_size": size, "nets": [n["key"] for n in nets],
                     "seed": args.seed, "batch": 1, "layout": "NCHW", "inference_mode": True,
                     "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32": False,
                     "clock": (core.CudaClock if cuda else core.CpuClock).name,
                     "budget_s": args.budget, "weights": "seeded random, calibrated per output "
                                                         "channel (gpu_kit_core.calibrate)"},
        "check": check, "timing": timing, "paper": paper_figures(nets),
        "paper_source": kit.get("paper_source"), "seconds": round(time.monotonic() - started, 1),
    }
    write_json_atomically(out, result)
    print(table(result, kit))
    print(f"{PROG}: {'all FP32 checks passed' if check['passed'] else 'an FP32 check FAILED'}; "
          f"{result['seconds']:.0f} s; result: {out}")
    return 0 if check["passed"] else 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv=None) -> int:
    if sys.version_info < MIN_PYTHON:
        print(f"{PROG}: needs Python >= {'.'.join(map(str, MIN_PYTHON))}", file=sys.stderr)
        return 2
    if _MISSING:
        print(f"{PROG}: {_MISSING}", file=sys.stderr)
        return 2
    if tuple(int(p) for p in re.findall(r"[0-9]+", torch.__version__)[:2]) < MIN_TORCH:
        print(f"{PROG}: needs PyTorch >= {'.'.join(map(str, MIN_TORCH))}, found {torch.__version__}",
              file=sys.stderr)
        return 2
    try:
        return run(_parser().parse_args(argv))
    except core.UsageError as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:   # e.g. --out not writable
        where = f"{err.filename}: " if err.filename else ""
        print(f"{PROG}: error: {where}{err.strerror or _one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:   # CUDA out of memory, a driver error ...: one line, the rest on demand
        if os.environ.get("DFSEG_TRACEBACK"):
            raise
        print(f"{PROG}: failed: {type(err).__name__}: {_one_line(err)[:500]} (rerun with "
              f"DFSEG_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
