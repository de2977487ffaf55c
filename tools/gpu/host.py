"""``make gpu-check``'s runner: what this machine has (a GPU, the CUDA Caffe build, TensorRT,
PyTorch), then every check (tools.gpu.checks) in a process of its own within a time budget --
a CUDA error aborts Caffe: it fails one check, not the run -- and the ``torch`` check, which
builds the GPU kit (tools.gpu.kit_build) and runs its run.py with this Python.

What cannot run here is skipped with the reason; :func:`check_all` returns the summary
``bench/gpu_check.json`` holds.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from dfseg.base.errors import InputError
from dfseg.base.sizes import format_hxw
from tools.gpu.kit_build import write_kit
from tools.report.paper import head_to_head_figures, read_paper_tables
from tools.runtime.caffe import BUILT_CAFFE_GPU

__all__ = ["CHECKS", "check_all", "find_gpu", "gpu_build_problem", "gpu_caffe_root", "run_torch_kit",
           "skip_reasons"]

REPO = Path(__file__).resolve().parents[2]   # tools/gpu/host.py -> the checkout

CHECKS = ("layers", "gradients", "nets", "caffe-time", "tensorrt", "torch")
# seconds one check may take at most (a hung one must leave time to the others)
CHECK_CAPS = {"layers": 90, "gradients": 90, "nets": 180, "caffe-time": 180, "tensorrt": 300,
              "torch": 300}
CAFFE_CHECKS = ("layers", "gradients", "nets", "caffe-time")
TENSORRT_MISSING = ("the tensorrt package is not installed: `pip install -e '.[tensorrt]'` on a "
                    "machine that reaches NVIDIA's package index (the registry's tensorrt-cu12-libs "
                    "is a stub that downloads from there, so the project's own machines cannot)")
TORCH_MISSING = "PyTorch is not installed in this Python (`make setup` installs it)"
KIT_DIR = REPO / "build" / "gpu-kit"
#: the record of a kit timing: its keys in the kit's result, then the protocol, engine, machine
KIT_TIMING_KEYS = ("median_ms", "min_ms", "ci95_ms", "samples")


def find_gpu(index: int = 0) -> tuple[dict | None, str]:
    """(name, count and the driver's CUDA version of GPU `index`, "") or (None, why not),
    asked of the driver itself, so that no CUDA toolkit or framework is needed for the answer."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, "no NVIDIA driver here (libcuda.so.1 does not load)"
    code = cuda.cuInit(0)
    if code != 0:
        return None, f"the NVIDIA driver finds no usable GPU (cuInit error {code})"
    count, device, version = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetCount(ctypes.byref(count))
    if count.value <= index:
        return None, f"GPU {index} asked for, the driver sees {count.value}"
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGet(ctypes.byref(device), index)
    cuda.cuDeviceGetName(name, 256, device)
    cuda.cuDriverGetVersion(ctypes.byref(version))
    return {"name": name.value.decode(errors="replace"), "index": index, "count": count.value,
            "driver_cuda": f"{version.value // 1000}.{version.value % 1000 // 10}"}, ""


def gpu_caffe_root() -> Path:
    return Path(os.environ.get("CAFFE_ROOT") or BUILT_CAFFE_GPU)


def gpu_build_problem(root: Path) -> str | None:
    """Why the Caffe at `root` is no CUDA build with our kernels (None: it is)."""
    lib = root / "lib" / "libcaffe.so"
    if not lib.is_file():
        return f"no CUDA Caffe at {root}: run `make caffe-gpu`"
    done = subprocess.run(["bash", str(REPO / "caffe" / "check_gpu_symbols.sh"), str(lib)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"{lib} is no CUDA build with our kernels (lacks {done.stdout.strip()[:200]})"
    return None


def skip_reasons(gpu: dict | None, why_no_gpu: str, root: Path) -> dict[str, str]:
    """The checks that cannot run here, with every reason (no GPU, no CUDA build, no TensorRT)."""
    build = gpu_build_problem(root)
    reasons = {name: build for name in CAFFE_CHECKS if build}
    if importlib.util.find_spec("tensorrt") is None:
        reasons["tensorrt"] = TENSORRT_MISSING
    if importlib.util.find_spec("torch") is None:
        reasons["torch"] = TORCH_MISSING
    if gpu is None:
        return {name: why_no_gpu + (f"; and {reasons[name]}" if name in reasons else "")
                for name in CHECKS}
    return reasons


def run_child(name: str, args, root: Path, timeout: float, child: list[str]) -> dict:
    """One check in its own process (`child` + the check's name and arguments: the command that
    runs one check, tools.gpu.checks.run_check); its JSON result, or a failure carrying its last
    words."""
    with tempfile.TemporaryDirectory(prefix="dfseg_gpu_check_") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [*child, name, "--result", str(result_path),
               "--gpu", str(args.gpu), "--iterations", str(args.iterations),
               "--rounds", str(args.rounds), "--hw", format_hxw(args.hw)]
        # the engines default to the CPU: only the GPU side is given the device
        env = dict(os.environ, CAFFE_ROOT=str(root), DFSEG_CAFFE_DEVICE="cpu", PYTHONUNBUFFERED="1")
        start = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "fail", "detail": f"did not finish within {timeout:.0f} s"}
        seconds = round(time.monotonic() - start, 1)
        if result_path.is_file():
            return {**json.loads(result_path.read_text()), "seconds": seconds}
        return {"status": "fail", "seconds": seconds, "detail": _last_words(done)}


def _last_words(done: subprocess.CompletedProcess) -> str:
    """A failed child's exit status and last three lines, as one line."""
    last = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()][-3:]
    return f"exit {done.returncode}: " + " | ".join(last)[-600:]


def _kit_detail(result: dict) -> str:
    """One line: the kit's check and the DF1-Seg/ICNet FPS ratio per precision."""
    rows = result["check"]["nets"]
    worst = max(r["fp32"]["scaled"] for r in rows.values())
    fp16 = [r["fp16"]["scaled"] for r in rows.values() if "fp16" in r]
    text = (f"PyTorch on {result['machine']['gpu'] or result['machine']['device']}: {len(rows)} nets "
            f"against the CPU, largest scaled difference {worst:.2g} FP32 (limit "
            f"{result['check']['limits']['fp32']:g})" + (f", {max(fp16):.2g} FP16" if fp16 else ""))
    for precision, entry in result["timing"].items():
        r = entry.get("df1seg_over_icnet_fps")
        fps = ", ".join(f"{n} {t['fps']:.1f}" for n, t in entry["nets"].items()
                        if n in ("df1seg", "icnet"))
        text += f"; {precision} FPS {fps}" + (
            f", DF1-Seg/ICNet {r['ratio']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r else "")
    return text


def _kit_head_to_head(result: dict, device: str) -> dict:
    """The kit's timing as the other checks' head to head: per precision each net's FPS and
    timing record, and the DF1-Seg/ICNet FPS ratio."""
    timing = result["timing"]

    def record(precision: str, entry: dict, t: dict) -> dict:
        return {**{k: t[k] for k in KIT_TIMING_KEYS}, "protocol": entry["protocol"],
                "engine": f"torch {precision}", "machine": result["machine"]}
    return {"engine": "torch", "device": result["machine"]["gpu"] or device,
            "fps": {p: {n: t["fps"] for n, t in e["nets"].items()} for p, e in timing.items()},
            "timings": {p: {n: record(p, e, t) for n, t in e["nets"].items()} for p, e in timing.items()},
            "fps_ratio_df1seg_over_icnet": {p: {"ratio": e["df1seg_over_icnet_fps"]["ratio"],
                                                 "ci95": e["df1seg_over_icnet_fps"]["ci95"]}
                                             for p, e in timing.items() if "df1seg_over_icnet_fps" in e}}


def _run_kit(args, kit_dir: Path, device: str, seconds: float) -> tuple[subprocess.CompletedProcess, dict | None]:
    """run.py of the kit in `kit_dir` with this Python; (the process, its JSON result or None)."""
    with tempfile.TemporaryDirectory(prefix="dfseg_gpu_kit_") as tmp:
        out = Path(tmp) / "result.json"
        # the timed rounds get 60 % of what is left: calibration and the check come first
        cmd = [sys.executable, str(kit_dir / "run.py"), "--device", device,
               "--rounds", str(args.rounds), "--repeats", str(args.iterations),
               "--size", format_hxw(args.hw), "--budget", f"{max(seconds * 0.6, 5):.0f}",
               "--out", str(out)]
        done = subprocess.run(cmd, cwd=kit_dir, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                              capture_output=True, text=True, errors="replace", timeout=max(seconds, 1))
        return done, (json.loads(out.read_text()) if out.is_file() else None)


def run_torch_kit(args, timeout: float, kit_dir: Path = KIT_DIR, device: str | None = None) -> dict:
    """The `torch` check: build the GPU kit into `kit_dir` (at --hw), then run its run.py there
    with this Python, as a user runs it on a rented GPU (docs/gpu.md, "The GPU kit").
    `device` defaults to cuda:--gpu; the tests give "cpu"."""
    device = device or f"cuda:{args.gpu}"
    start = time.monotonic()
    try:
        write_kit(kit_dir, [tuple(args.hw)])
    except (InputError, OSError) as err:
        return {"status": "fail", "detail": f"the GPU kit was not built: {' '.join(str(err).split())}"}
    try:
        done, result = _run_kit(args, kit_dir, device, timeout - (time.monotonic() - start))
    except subprocess.TimeoutExpired:
        return {"status": "fail", "detail": f"did not finish within {timeout:.0f} s"}
    seconds = round(time.monotonic() - start, 1)
    if result is None:
        if done.returncode == 0:   # run.py's one line: this PyTorch sees no CUDA GPU
            return {"status": "skip", "seconds": seconds, "detail": done.stdout.strip()[-600:]}
        return {"status": "fail", "seconds": seconds, "detail": _last_words(done)}
    return {"status": "pass" if result["check"]["passed"] and done.returncode == 0 else "fail",
            "seconds": seconds, "detail": _kit_detail(result), "head_to_head": _kit_head_to_head(result, device),
            "kit": str(kit_dir), "result": result}


def _no_progress(name: str, result: dict | None) -> None:
    pass


def check_all(args, child: list[str],
              progress: Callable[[str, dict | None], None] = _no_progress) -> dict:
    """Every check within `args.budget` seconds; `child` is the command that runs one check
    in a process of its own (run_child); `progress(name, None)` before a check runs and
    `progress(name, result)` after each.  The summary gpu_check.json holds."""
    gpu, why_no_gpu = find_gpu(args.gpu)
    root = gpu_caffe_root()
    reasons = skip_reasons(gpu, why_no_gpu, root)
    deadline = time.monotonic() + args.budget
    checks = {}
    for name in CHECKS:
        left = deadline - time.monotonic()
        if name in reasons:
            checks[name] = {"status": "skip", "detail": reasons[name]}
        elif left < 20:
            checks[name] = {"status": "skip", "detail": f"out of time ({args.budget:.0f} s budget)"}
        else:
            progress(name, None)
            cap = min(left, CHECK_CAPS[name])
            checks[name] = (run_torch_kit(args, cap) if name == "torch" else
                            run_child(name, args, root, cap, child))
        progress(name, checks[name])
    counts = {s: sum(c["status"] == s for c in checks.values()) for s in ("pass", "fail", "skip")}
    return {"gpu": gpu, "no_gpu_reason": why_no_gpu or None, "caffe_root": str(root),
            "hw": format_hxw(args.hw), "budget_s": args.budget, "checks": checks,
            "head_to_head": {name: checks[name].get("head_to_head")
                             for name in ("caffe-time", "tensorrt", "torch")
                             if checks[name].get("head_to_head")},
            "paper": head_to_head_figures(read_paper_tables()),
            "passed": counts["pass"], "failed": counts["fail"], "skipped": counts["skip"]}
