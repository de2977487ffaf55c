"""The GPU kit's measuring parts (gpu_kit_core.py beside run.py in the kit folder; run.py
loads it by path, in the kit and in the package alike): calibrated random weights, the
device-against-CPU check and the interleaved timing.  Imports only the standard library,
NumPy and PyTorch, as run.py (tools/gpu/kit/run.py) does; docs/gpu.md, "The GPU kit"."""
from __future__ import annotations

import copy
import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PROG = "run.py"
SUBJECT, BASELINE = "df1seg", "icnet"
FP32_LIMIT = 1e-4   # as tools.gpu_check's Caffe CPU-vs-GPU nets check
# FP16 rounds to 11 significant bits (unit roundoff 4.9e-4) and these nets carry a rounding
# difference through their 40-80 layers with a gain of ~30 (FP32: 2e-6 against 6e-8); the
# CPU's FP16 lands at 2.2e-3 to 3.8e-3 of the largest output (all six nets, seeds 0 and 1).
# 1e-2 is FP16's guide, reported and never failed: GPUs' FP16 paths differ (accumulation
# precision, cuDNN's algorithm choice), and the pass/fail check is FP32's.
FP16_GUIDE = 1e-2
BOOTSTRAP_RESAMPLES = 2000
CALIBRATED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
MIN_POSITIONS = 64   # fewer values per channel than this: normalise the layer as a whole


class UsageError(Exception):
    """Bad arguments or an unusable kit: one line, exit 2."""


# ---------------------------------------------------------------- the kit's modules

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
    amplifies every rounding difference hundreds of times (400x at DF1-Seg's 1x2 pool, which
    put the CPU's own FP32 recomputation at 2e-5 of the output): such a layer is scaled by
    the spread of all its channels together."""
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
        if isinstance(module, CALIBRATED):
            hooks.append(module.register_forward_hook(layer_hook))
        elif isinstance(module, BATCHNORMS) and module.track_running_stats:
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
                         "cut_to_budget": (rounds, repeats) != planned, "budget_s": round(budget_s, 1)}}


def summarize(samples: list, round_medians: list) -> dict:
    v = np.asarray(samples, dtype=float)
    median = float(np.median(v))
    return {"median_ms": median, "min_ms": float(v.min()), "fps": 1e3 / median,
            "ci95_ms": list(bootstrap_median_interval(v)), "samples": int(v.size),
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
        check_net = load_net_class(kit_dir / check_entry["file"], f"dfseg_kit_{key}_{check_size}")()
        check_net.eval()
        x = torch.randn(1, 3, *hw_of(check_entry["run_hw"]), generator=generator)
        calibrate(check_net, x, generator)
        timed_entry = net["modules"][size]
        if size == check_size:
            timed_net = check_net
        else:
            timed_net = load_net_class(kit_dir / timed_entry["file"], f"dfseg_kit_{key}_{size}")()
            timed_net.eval()
            timed_net.load_state_dict(check_net.state_dict())
        check_x = torch.randn(1, 3, *hw_of(check_entry["run_hw"]), generator=generator)
        prepared[key] = {"net": net, "check": check_net, "check_x": check_x,
                         "timed": timed_net, "timed_hw": hw_of(timed_entry["run_hw"])}
    return prepared


def run_checks(prepared: dict, device: str, precisions: list[str]) -> dict:
    """Each net's output on `device` in each precision against its CPU float32 output, same
    weights, same input; FP32 must be within FP32_LIMIT of the CPU's largest value."""
    nets, passed = {}, True
    for key, p in prepared.items():
        with torch.inference_mode():
            reference = outputs_of(p["check"](p["check_x"]))
            rms = torch.stack([r.double().pow(2).mean() for r in reference]).mean().sqrt()
            row = {"size": "x".join(map(str, p["check_x"].shape[2:])), "cpu_output_rms": float(rms)}
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


def run_timing(prepared: dict, device: str, precisions: list[str], rounds: int, repeats: int,
               warmup: int, seed: int, budget_s: float) -> dict:
    """Every net in interleaved rounds, one precision after the other (each given an equal
    share of what is left of `budget_s`); per net its times, and the DF1-Seg/ICNet ratio."""
    clock = CudaClock() if device.startswith("cuda") else CpuClock()
    timing, started = {}, time.monotonic()
    for i, precision in enumerate(precisions):
        left = budget_s - (time.monotonic() - started)
        share = max(left, 1.0) / (len(precisions) - i)
        print(f"{PROG}: timing {precision} at {len(prepared)} nets ...", file=sys.stderr, flush=True)
        dtype = torch.float16 if precision == "fp16" else torch.float32
        runs = {}
        for key, p in prepared.items():
            net = copy.deepcopy(p["timed"]).to(device=device, dtype=dtype)
            x = torch.randn(1, 3, *p["timed_hw"], generator=torch.Generator().manual_seed(seed))
            x = x.to(device=device, dtype=dtype)
            runs[key] = (lambda net=net, x=x: net(x))
        with torch.inference_mode():
            measured = interleaved(runs, clock, rounds, repeats, warmup, share)
        entry = {"protocol": measured["protocol"], "nets": {}}
        for key in runs:
            entry["nets"][key] = {"name": prepared[key]["net"]["name"],
                                  "size": "x".join(map(str, prepared[key]["timed_hw"])),
                                  **summarize(measured["samples_ms"][key],
                                              measured["round_medians_ms"][key])}
        if SUBJECT in runs and BASELINE in runs:
            entry["df1seg_over_icnet_fps"] = fps_ratio(measured["round_medians_ms"][SUBJECT],
                                                       measured["round_medians_ms"][BASELINE])
        timing[precision] = entry
        del runs
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return timing


