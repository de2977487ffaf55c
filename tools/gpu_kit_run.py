"""The GPU kit's runner (`run.py` in the folder `python -m tools.gpu_kit` writes): DF1-Seg against
ICNet, and the other DF-Seg nets beside them, checked and timed in plain PyTorch on any CUDA
machine.  Needs only Python >= 3.10, NumPy and PyTorch >= 2.4: nothing of dfseg, no Caffe, no
protobuf, no YAML, no network.

    python run.py [--device cuda|cuda:N|cpu] [--rounds 10] [--repeats 20] [--warmup W]
                  [--size 1024x2048] [--nets df1seg,icnet,...] [--seed 0] [--budget 240]
                  [--out gpu_check.json]

What it does, per net of kit.json (each a module generated from the Caffe net `caffe time` runs,
merged BN; ICNet from its Cityscapes evaluation net):
1. weights: seeded random weights, calibrated in one CPU pass at the check size so that every
   convolution's output channel has unit spread and a mean in [0.5, 1.5] (see `calibrate`);
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
import copy
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:   # the kit's only dependencies besides the standard library
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as _err:   # said in one line by main(), not as a traceback at import
    np = torch = nn = F = None
    _MISSING = f"{_err.name or 'a dependency'} is not installed here: pip install torch numpy"
else:
    _MISSING = None

PROG = "run.py"
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 4)
SUBJECT, BASELINE = "df1seg", "icnet"
FP32_LIMIT = 1e-4   # as tools.gpu_check's Caffe CPU-vs-GPU nets check
FP16_GUIDE = 1e-2   # FP16 keeps ~3 decimal digits per operation; 40-80 layers deep, 1e-2 is its scale
BOOTSTRAP_RESAMPLES = 2000
DEFAULT_BUDGET_S = 240.0   # the timed rounds of all precisions together: the whole run stays < 5 min
CALIBRATED = ("Conv2d", "ConvTranspose2d", "Linear")
MIN_POSITIONS = 64   # fewer values per channel than this: normalise the layer as a whole


class UsageError(Exception):
    """Bad arguments or an unusable kit: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # argparse's usage + error is two lines; the kit says one
        raise UsageError(message)


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
        raise UsageError(f"--size {text!r}: expected HxW with positive ASCII numbers, e.g. 1024x2048")
    return int(match.group(1)), int(match.group(2))


def parse_device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", text):
        raise UsageError(f"--device {text!r}: expected cuda, cuda:N or cpu")
    return text


def read_kit(kit_dir: Path) -> dict:
    path = kit_dir / "kit.json"
    try:
        kit = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror or err} (run.py reads the kit.json beside it; "
                         "`python -m tools.gpu_kit --out DIR` writes a kit)") from None
    except ValueError as err:
        raise UsageError(f"{path}: not a kit description ({err})") from None
    if not isinstance(kit, dict) or not isinstance(kit.get("nets"), list) or not kit["nets"]:
        raise UsageError(f"{path}: not a kit description (no nets)")
    return kit


def select_nets(kit: dict, names: str | None) -> list[dict]:
    known = {net["key"]: net for net in kit["nets"]}
    if names is None:
        return list(kit["nets"])
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if not wanted or unknown:
        raise UsageError(f"--nets {names!r}: the kit holds {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(wanted)]


def check_arguments(args, kit: dict) -> tuple[str, list[dict]]:
    """(timing size as kit.json names it, the nets); UsageError for anything wrong."""
    parse_device(args.device)
    if args.rounds < 1 or args.repeats < 1 or (args.warmup is not None and args.warmup < 0):
        raise UsageError("--rounds and --repeats must be at least 1, --warmup at least 0")
    if not args.budget > 0:
        raise UsageError("--budget must be a positive number of seconds")
    size = kit["timing_size"] if args.size is None else "x".join(map(str, parse_hxw(args.size)))
    if size not in kit["sizes"]:
        raise UsageError(f"--size {size}: this kit holds {', '.join(kit['sizes'])} (the nets fix "
                         f"their pooling and Interp sizes; `python -m tools.gpu_kit --sizes "
                         f"{size}` makes a kit with it)")
    return size, select_nets(kit, args.nets)


def load_net_class(path: Path, name: str):
    """The generated module's Net class, the file imported by path (no package around it)."""
    spec = importlib.util.spec_from_file_location(name, path) if path.is_file() else None
    if spec is None:
        raise UsageError(f"{path}: module missing from the kit")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Net


def hw_of(text: str) -> tuple[int, int]:
    h, w = text.split("x")
    return int(h), int(w)


# ---------------------------------------------------------------- weights

def _scale_output_channels(module, scale) -> None:
    """Multiply the weights that make output channel c by scale[c]."""
    w = module.weight.data
    if isinstance(module, nn.ConvTranspose2d):   # (C_in, C_out/groups, kh, kw)
        g = module.groups
        w.view(g, w.shape[0] // g, *w.shape[1:]).mul_(
            scale.view(g, 1, -1, *([1] * (w.dim() - 2))))
    else:                                        # Conv2d (C_out, ...), Linear (out, in)
        w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))


def _spread(std, output):
    """Per-channel spreads to normalise by.  Over a handful of positions (pyramid pooling's 1x1
    and 1x2 maps at the check size) a channel's own spread can be tiny, and dividing by it
    would amplify every rounding difference a thousandfold: such a layer is scaled by the
    spread of all its channels together."""
    if output.numel() // output.shape[1] < MIN_POSITIONS:
        return std.pow(2).mean().sqrt().expand_as(std)
    return std


def calibrate(net, x, generator) -> None:
    """One pass of `x` through `net` (CPU, float32) that rescales every convolution (and
    Linear) per output channel to unit spread around a random mean in [0.5, 1.5], and sets
    every BatchNorm's statistics to do the same; each hook returns the corrected output, so
    later layers are calibrated on calibrated inputs.

    Why: these are merged-BN nets (convolutions with bias, no BatchNorm between them), so with
    PyTorch's default initialisation the activations shrink or grow layer after layer.  A net
    whose output vanished compares "equal" on any device, and one whose activations grow
    overflows FP16 (largest value 65504); calibrated, every layer works in a range both FP32
    and FP16 represent well.  The positive means keep most values past each ReLU alive; the
    random ones keep the channels unlike each other.  A layer without bias (the decoders'
    Deconvolution upsampling) is only scaled, to unit RMS."""
    hooks = []

    def target_means(channels):
        return 0.5 + torch.rand(channels, generator=generator, dtype=torch.float64)

    def layer_hook(module, inputs, output):
        axes = [0] + list(range(2, output.dim()))
        y = output.double()
        if module.bias is None:
            rms = y.pow(2).mean(dim=axes).sqrt()
            scale = torch.where(rms > 1e-12, 1.0 / rms, torch.ones_like(rms))
            _scale_output_channels(module, scale.float())
            shaped = [1, -1] + [1] * (output.dim() - 2)
            return (y * scale.view(shaped)).float()
        mean, std = y.mean(dim=axes), _spread(y.std(dim=axes, unbiased=False), output)
        scale = torch.where(std > 1e-12, 1.0 / std, torch.ones_like(std))   # a constant channel stays flat
        shift = target_means(mean.numel())
        _scale_output_channels(module, scale.float())
        module.bias.data.copy_(((module.bias.data.double() - mean) * scale + shift).float())
        shaped = [1, -1] + [1] * (output.dim() - 2)
        return ((y - mean.view(shaped)) * scale.view(shaped) + shift.view(shaped)).float()

    def batchnorm_hook(module, inputs, output):
        x_in = inputs[0]
        axes = [0] + list(range(2, x_in.dim()))
        module.running_mean.copy_(x_in.mean(dim=axes))
        module.running_var.copy_(_spread(x_in.std(dim=axes, unbiased=False), x_in).pow(2))
        if module.affine:
            module.weight.data.fill_(1.0)
            module.bias.data.copy_(target_means(x_in.shape[1]).float())
        return F.batch_norm(x_in, module.running_mean, module.running_var, module.weight,
                            module.bias, False, 0.0, module.eps)

    for module in net.modules():
        if type(module).__name__ in CALIBRATED and getattr(module, "weight", None) is not None:
            hooks.append(module.register_forward_hook(layer_hook))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            hooks.append(module.register_forward_hook(batchnorm_hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()


def outputs_of(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def scaled_difference(got: list, reference: list) -> dict:
    """Largest |got - reference| over every output, over the reference's largest magnitude."""
    diff = big = 0.0
    for g, r in zip(got, reference):
        g, r = g.detach().double().cpu(), r.detach().double().cpu()
        if g.shape != r.shape:
            return {"max_abs_diff": None, "max_abs_cpu": None, "scaled": float("inf"),
                    "why": f"shape {tuple(g.shape)} against the CPU's {tuple(r.shape)}"}
        d = (g - r).abs().max().item()
        diff = float("inf") if d != d else max(diff, d)   # NaN compares false: count it as inf
        big = max(big, r.abs().max().item())
    return {"max_abs_diff": diff, "max_abs_cpu": big, "scaled": diff / big if big > 0 else float("inf")}


# ---------------------------------------------------------------- timing

class CudaClock:
    """Milliseconds of one call on the GPU, from CUDA events around it."""
    name = "CUDA events (torch.cuda.Event), synchronised after every pass"

    def __call__(self, run) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)


class CpuClock:
    name = "time.perf_counter"

    def __call__(self, run) -> float:
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) * 1e3


def bootstrap_median_interval(values, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES):
    """Percentile bootstrap 95 % interval of the median (one value: a zero-width interval)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return float(v[0]), float(v[0])
    draws = np.median(v[np.random.default_rng(seed).integers(0, v.size, (resamples, v.size))], axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def fit_to_budget(rounds: int, repeats: int, pass_ms: float, seconds: float) -> tuple[int, int]:
    """(rounds, repeats) whose passes (`pass_ms` for one pass of every net) fit in `seconds`:
    fewer repeats first (down to 1), then fewer rounds (down to 2, or 1 when asked for 1)."""
    def cost(r, n):
        return r * n * pass_ms / 1e3
    while repeats > 1 and cost(rounds, repeats) > seconds:
        repeats = max(1, int(repeats * seconds / cost(rounds, repeats)))
    while rounds > 2 and cost(rounds, repeats) > seconds:
        rounds = max(2, int(rounds * seconds / cost(rounds, repeats)))
    return rounds, repeats


def interleaved(runs: dict, clock, rounds: int, repeats: int, warmup: int, budget_s: float) -> dict:
    """Warm-up, then rounds in which every net runs `repeats` times in turn (the order reversed
    every other round, so that neither goes first always): a change of load or clock hits all
    nets alike.  Returns per net its samples and round medians, and the protocol as run."""
    warm_ms = {}
    for name, run in runs.items():
        times = [clock(run) for _ in range(max(warmup, 1))]   # >= 1: the budget needs a time
        warm_ms[name] = min(times)
    planned = (rounds, repeats)
    rounds, repeats = fit_to_budget(rounds, repeats, sum(warm_ms.values()), budget_s)
    names = list(runs)
    samples = {n: [] for n in names}
    per_round = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times = [clock(runs[name]) for _ in range(repeats)]
            samples[name] += times
            per_round[name].append(float(np.median(times)))
    return {"samples_ms": samples, "round_medians_ms": per_round,
            "protocol": {"rounds": rounds, "repeats": repeats, "warmup": max(warmup, 1),
                         "asked": {"rounds": planned[0], "repeats": planned[1]},
                         "cut_to_budget": (rounds, repeats) != planned, "budget_s": budget_s}}


def summarize(samples: list, round_medians: list) -> dict:
    v = np.asarray(samples, dtype=float)
    median = float(np.median(v))
    return {"median_ms": median, "min_ms": float(v.min()), "fps": 1e3 / median,
            "ci95_ms": list(bootstrap_median_interval(v)), "passes": int(v.size),
            "round_medians_ms": round_medians, "samples_ms": [float(s) for s in v]}


def fps_ratio(subject_rounds: list, baseline_rounds: list) -> dict:
    """FPS(subject) / FPS(baseline) = baseline ms / subject ms, per round (both under the same
    load), its median and a bootstrap 95 % interval over rounds."""
    ratios = np.asarray(baseline_rounds, float) / np.asarray(subject_rounds, float)
    return {"ratio": float(np.median(ratios)), "ci95": list(bootstrap_median_interval(ratios)),
            "per_round": [float(r) for r in ratios]}


# ---------------------------------------------------------------- the machine

def driver_version() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else "unknown"


def describe_machine(device: str) -> dict:
    cuda = device.startswith("cuda")
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
        "driver": driver_version() if cuda else None,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "logical_cpus": os.cpu_count(),
    }


def no_gpu_line() -> str:
    why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
           else f"PyTorch (CUDA {torch.version.cuda}) finds no usable CUDA GPU")
    return (f"{PROG}: no CUDA GPU is visible ({why}); to run the same check and timing on the "
            f"CPU: python run.py --device cpu (slow at 1024x2048: add e.g. --size 256x512 "
            f"--rounds 3 --repeats 2)")


# ---------------------------------------------------------------- the run

def prepare(nets: list[dict], kit_dir: Path, check_size: str, size: str, seed: int) -> dict:
    """Per net: the CPU module at the check size with calibrated weights, and the module at the
    timing size with the same weights (a separate module only where the sizes differ)."""
    prepared = {}
    for net in nets:
        key = net["key"]
        print(f"{PROG}: calibrating {net['name']} ...", file=sys.stderr, flush=True)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        check_entry = net["modules"][check_size]
        check_net = load_net_class(kit_dir / check_entry["file"], f"dfseg_kit_{key}_{check_size}")().eval()
        x = torch.randn(1, 3, *hw_of(check_entry["run_hw"]), generator=generator)
        calibrate(check_net, x, generator)
        timed_entry = net["modules"][size]
        if size == check_size:
            timed_net = check_net
        else:
            timed_net = load_net_class(kit_dir / timed_entry["file"], f"dfseg_kit_{key}_{size}")().eval()
            timed_net.load_state_dict(check_net.state_dict())
        check_x = torch.randn(1, 3, *hw_of(check_entry["run_hw"]), generator=generator)
        prepared[key] = {"net": net, "check": check_net, "check_x": check_x,
                         "timed": timed_net, "timed_hw": hw_of(timed_entry["run_hw"])}
    return prepared


def run_checks(prepared: dict, device: str, precisions: list[str]) -> dict:
    nets, passed = {}, True
    for key, p in prepared.items():
        with torch.inference_mode():
            reference = outputs_of(p["check"](p["check_x"]))
            row = {"size": "x".join(map(str, p["check_x"].shape[2:])),
                   "cpu_output_rms": float(torch.stack([r.double().pow(2).mean() for r in reference]).mean().sqrt())}
            for precision in precisions:
                dtype = torch.float16 if precision == "fp16" else torch.float32
                moved = copy.deepcopy(p["check"]).to(device=device, dtype=dtype)
                got = outputs_of(moved(p["check_x"].to(device=device, dtype=dtype)))
                result = scaled_difference(got, reference)
                limit = FP16_GUIDE if precision == "fp16" else FP32_LIMIT
                result.update(limit=limit, ok=result["scaled"] <= limit)
                row[precision] = result
                del moved, got
        vanished = not (0 < row["cpu_output_rms"] < float("inf"))
        if vanished:   # a dead output equals itself on any device: no check at all
            row["fp32"].update(ok=False, why="the CPU output vanished or is not finite")
        passed &= row["fp32"]["ok"]
        nets[key] = row
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"nets": nets, "passed": bool(passed)}


def run_timing(prepared: dict, device: str, precisions: list[str], args, budget_s: float) -> dict:
    clock = CudaClock() if device.startswith("cuda") else CpuClock()
    warmup = args.warmup if args.warmup is not None else (10 if device.startswith("cuda") else 1)
    timing, started = {}, time.monotonic()
    for i, precision in enumerate(precisions):
        left = budget_s - (time.monotonic() - started)
        share = max(left, 1.0) / (len(precisions) - i)
        print(f"{PROG}: timing {precision} at {len(prepared)} nets ...", file=sys.stderr, flush=True)
        dtype = torch.float16 if precision == "fp16" else torch.float32
        runs = {}
        for key, p in prepared.items():
            net = copy.deepcopy(p["timed"]).to(device=device, dtype=dtype)
            x = torch.randn(1, 3, *p["timed_hw"], generator=torch.Generator().manual_seed(args.seed))
            x = x.to(device=device, dtype=dtype)
            runs[key] = (lambda net=net, x=x: net(x))
        with torch.inference_mode():
            measured = interleaved(runs, clock, args.rounds, args.repeats, warmup, share)
        entry = {"protocol": measured["protocol"], "nets": {}}
        for key in runs:
            entry["nets"][key] = {"name": prepared[key]["net"]["name"],
                                  "size": "x".join(map(str, prepared[key]["timed_hw"])),
                                  **summarize(measured["samples_ms"][key], measured["round_medians_ms"][key])}
        if SUBJECT in runs and BASELINE in runs:
            entry["df1seg_over_icnet_fps"] = fps_ratio(measured["round_medians_ms"][SUBJECT],
                                                       measured["round_medians_ms"][BASELINE])
        timing[precision] = entry
        del runs
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return timing


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


def table(result: dict, kit: dict) -> str:
    """The printed report: per net the check, the times and the paper's figures."""
    m, check, timing = result["machine"], result["check"], result["timing"]
    where = (f"{m['gpu']} (driver {m['driver']}, CUDA {m['cuda']}, cuDNN {m['cudnn']})"
             if m["gpu"] else f"the CPU ({m['cpu_threads']} threads)")
    lines = [f"dfseg GPU kit on {where}, torch {m['torch']}, Python {m['python']}",
             f"check: {m['device']} against CPU float32 at the check size"
             + (" (the CPU against itself: equal by construction)" if result["check"]["trivial"] else "")]
    head = f"{'net':<12} {'size':>9}  {'fp32 diff':>9} {'fp16 diff':>9}"
    for precision in timing:
        head += f"  {precision + ' ms':>9} {precision + ' FPS':>9}"
    head += f"  | paper FPS: {'Titan X Caffe':>13} {'1080 Ti TensorRT':>16}"
    lines += [head, "-" * len(head)]
    for key, row in check["nets"].items():
        name = next(n["name"] for n in kit["nets"] if n["key"] == key)
        paper = next(n for n in kit["nets"] if n["key"] == key).get("paper") or {}
        size = next(iter(timing.values()))["nets"][key]["size"] if timing else row["size"]
        fp16 = row.get("fp16", {}).get("scaled")
        line = (f"{name:<12} {size:>9}  {row['fp32']['scaled']:>9.1e}"
                f"{'!' if not row['fp32']['ok'] else ' '}{_num(fp16, '.1e'):>8}")
        for precision, entry in timing.items():
            t = entry["nets"][key]
            line += f"  {t['median_ms']:>9.2f} {t['fps']:>9.1f}"
        line += (f"  | {'':>10} {_num(paper.get('titanx_caffe_fps'), '.1f'):>13} "
                 f"{_num(paper.get('gtx1080ti_tensorrt_fps'), '.1f'):>16}")
        lines.append(line)
    ratios = [f"{p} {e['df1seg_over_icnet_fps']['ratio']:.3f} [{e['df1seg_over_icnet_fps']['ci95'][0]:.3f}, "
              f"{e['df1seg_over_icnet_fps']['ci95'][1]:.3f}]"
              for p, e in timing.items() if "df1seg_over_icnet_fps" in e]
    paper_ratio = result["paper"].get("df1seg_over_icnet_titanx_caffe")
    if ratios:
        lines.append(f"DF1-Seg / ICNet FPS ratio (median of rounds, 95 % interval): {'; '.join(ratios)}"
                     + (f"; paper, Titan X Caffe: {paper_ratio:.3f}" if paper_ratio else ""))
    limits = (f"fp32 diff: largest |device - CPU| over the largest |CPU value|, limit {FP32_LIMIT:g} "
              f"('!' marks a failure); fp16 diff reported against a {FP16_GUIDE:g} guide, never failed")
    lines.append(limits)
    sizes = {e["nets"][k]["size"] for e in timing.values() for k in e["nets"]}
    if sizes and not sizes <= {kit["timing_size"], kit.get("icnet_timing_size")}:
        lines.append(f"note: the paper's figures are for {kit['timing_size']} (ICNet "
                     f"{kit.get('icnet_timing_size')}); these times are at another size")
    cut = [p for p, e in timing.items() if e["protocol"]["cut_to_budget"]]
    if cut:
        lines.append(f"note: {', '.join(cut)} rounds/repeats cut to fit --budget "
                     f"{result['settings']['budget_s']:g} s")
    return "\n".join(lines)


def run(args) -> int:
    kit_dir = args.kit
    kit = read_kit(kit_dir)
    size, nets = check_arguments(args, kit)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(no_gpu_line())
        return 0
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
    out = args.out or kit_dir / "gpu_check.json"
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    started = time.monotonic()
    # Caffe (and the paper's Maxwell Titan X) computes true FP32: TF32 off, so FP32 means FP32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # cuDNN picks its fastest algorithm per shape during warm-up (as TensorRT does at build time)
    torch.backends.cudnn.benchmark = True
    precisions = ["fp32", "fp16"] if device.startswith("cuda") else ["fp32"]
    prepared = prepare(nets, kit_dir, kit["check_size"], size, args.seed)
    print(f"{PROG}: checking {device} against the CPU ...", file=sys.stderr, flush=True)
    check = run_checks(prepared, device, precisions)
    check.update(against="CPU float32, the same weights and input", size=kit["check_size"],
                 limits={"fp32": FP32_LIMIT, "fp16_guide": FP16_GUIDE},
                 fp16_counts=False, trivial=device == "cpu",
                 note=("--device cpu: the CPU compared with itself, equal by construction; the "
                       "check means something only on a GPU") if device == "cpu" else
                 "fp32 within the limit or the run fails (exit 1); fp16 reported, never failed")
    timing = run_timing(prepared, device, precisions, args, args.budget)
    paper = {n["key"]: n.get("paper") for n in nets}
    subject, baseline = (paper.get(SUBJECT) or {}), (paper.get(BASELINE) or {})
    if subject.get("titanx_caffe_fps") and baseline.get("titanx_caffe_fps"):
        paper["df1seg_over_icnet_titanx_caffe"] = subject["titanx_caffe_fps"] / baseline["titanx_caffe_fps"]
    result = {
        "kit": {"folder": str(kit_dir), "sizes": kit["sizes"], "check_size": kit["check_size"],
                "made_by": kit.get("made_by")},
        "machine": describe_machine(device),
        "settings": {"device": device, "timing_size": size, "nets": [n["key"] for n in nets],
                     "seed": args.seed, "batch": 1, "layout": "NCHW",
                     "cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "tf32": False, "inference_mode": True, "clock": (CudaClock if device != "cpu" else CpuClock).name,
                     "budget_s": args.budget,
                     "weights": "seeded random, calibrated per output channel (run.py calibrate)"},
        "check": check,
        "timing": timing,
        "paper": paper,
        "paper_source": kit.get("paper_source"),
        "seconds": round(time.monotonic() - started, 1),
    }
    write_json_atomically(out, result)
    print(table(result, kit))
    print(f"{PROG}: {'all FP32 checks passed' if check['passed'] else 'an FP32 check FAILED'}; "
          f"{result['seconds']:.0f} s; result: {out}")
    return 0 if check["passed"] else 1


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
    except UsageError as err:
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


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
