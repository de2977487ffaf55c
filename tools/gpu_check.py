"""`make gpu-check`: every GPU check of dfseg in one command, with a JSON summary.

    python -m tools.gpu_check [--out bench/gpu_check.json] [--gpu 0] [--budget 570]
        [--iterations 50] [--rounds 5] [--hw 1024x2048]

Checks, each in a process of its own (a CUDA error aborts Caffe: it fails one check, not the run):
- ``layers``: our CUDA Interp / Upsample / ShuffleChannel against the CPU layer of the same
  library, forward and backward, within 1e-5 (tools.gpu_layers);
- ``gradients``: the CUDA backward of each against central differences of the CUDA forward;
- ``nets``: DF1-Seg and ICNet (random weights, 1024x2048 / 1025x2049) in pycaffe, CPU against
  GPU forward, within 1e-4 of the largest output;
- ``caffe-time``: ``caffe time -gpu N``, DF1-Seg against ICNet in interleaved rounds
  (tools.engines.protocol.compare), the FPS ratio with its 95 % interval beside the paper's
  Titan X figures (30.7 against 30.3);
- ``tensorrt``: TensorRT FP32 against ONNX Runtime within 1e-3 for both nets, then DF1-Seg
  against ICNet on TensorRT FP32 (CUDA events) beside the paper's 1080 Ti figure;
- ``torch``: the GPU kit (tools.gpu_kit, built into build/gpu-kit) run by its own run.py with
  this Python's PyTorch: the DF-Seg nets and ICNet as plain PyTorch modules, GPU against CPU
  within 1e-4 (FP32), then timed in interleaved rounds, FP32 and FP16 (CUDA events).

What it cannot run (no GPU, no ``make caffe-gpu`` build, no TensorRT, no ICNet reference
prototxt, no PyTorch or one that sees no GPU, out of time) is skipped with the reason.  Without
a GPU it says so, writes the summary with every check skipped and exits 0.  Exit 1 when a check
failed.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.caffe_locate import BUILT_CAFFE_GPU
from dfseg.base.atomic import atomic_write_text
from dfseg.base.cli import CliError, run_cli
from dfseg.base.sizes import format_hxw, parse_hxw
from tools.gpu_runs import paper_figures
from tools.registry import reference_root

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "gpu_check.json"
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


def run_child(name: str, args, root: Path, timeout: float) -> dict:
    """One check in its own process; its JSON result, or a failure carrying its last words."""
    with tempfile.TemporaryDirectory(prefix="dfseg_gpu_check_") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "tools.gpu_runs", name, "--result", str(result_path),
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


def run_torch_kit(args, timeout: float, kit_dir: Path = KIT_DIR, device: str | None = None) -> dict:
    """The `torch` check: build the GPU kit into `kit_dir` (tools.gpu_kit, at --hw), then run
    its run.py there with this Python, as a user runs it on a rented GPU (docs/gpu.md, "The
    GPU kit").  `device` defaults to cuda:--gpu; the tests give "cpu"."""
    device = device or f"cuda:{args.gpu}"
    start = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        built = subprocess.run([sys.executable, "-m", "tools.gpu_kit", "--out", str(kit_dir),
                                "--sizes", format_hxw(args.hw)], cwd=REPO, env=env,
                               capture_output=True, text=True, errors="replace", timeout=timeout)
        if built.returncode != 0:
            return {"status": "fail", "detail": f"the GPU kit was not built: {_last_words(built)}"}
        left = timeout - (time.monotonic() - start)
        with tempfile.TemporaryDirectory(prefix="dfseg_gpu_kit_") as tmp:
            out = Path(tmp) / "result.json"
            # the timed rounds get 60 % of what is left: calibration and the check come first
            cmd = [sys.executable, str(kit_dir / "run.py"), "--device", device,
                   "--rounds", str(args.rounds), "--repeats", str(args.iterations),
                   "--size", format_hxw(args.hw), "--budget", f"{max(left * 0.6, 5):.0f}",
                   "--out", str(out)]
            done = subprocess.run(cmd, cwd=kit_dir, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=max(left, 1))
            result = json.loads(out.read_text()) if out.is_file() else None
    except subprocess.TimeoutExpired:
        return {"status": "fail", "detail": f"did not finish within {timeout:.0f} s"}
    seconds = round(time.monotonic() - start, 1)
    if result is None:
        if done.returncode == 0:   # run.py's one line: this PyTorch sees no CUDA GPU
            return {"status": "skip", "seconds": seconds, "detail": done.stdout.strip()[-600:]}
        return {"status": "fail", "seconds": seconds, "detail": _last_words(done)}
    timing = result["timing"]
    h2h = {"engine": "torch", "device": result["machine"]["gpu"] or device,
           "fps": {p: {n: t["fps"] for n, t in e["nets"].items()} for p, e in timing.items()},
           "median_ms": {p: {n: t["median_ms"] for n, t in e["nets"].items()} for p, e in timing.items()},
           "fps_ratio_df1seg_over_icnet": {p: {"ratio": e["df1seg_over_icnet_fps"]["ratio"],
                                                "ci95": e["df1seg_over_icnet_fps"]["ci95"]}
                                            for p, e in timing.items() if "df1seg_over_icnet_fps" in e}}
    return {"status": "pass" if result["check"]["passed"] and done.returncode == 0 else "fail",
            "seconds": seconds, "detail": _kit_detail(result), "head_to_head": h2h,
            "kit": str(kit_dir), "result": result}


def check_all(args) -> dict:
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
            print(f"gpu_check: running {name} ...", file=sys.stderr, flush=True)
            cap = min(left, CHECK_CAPS[name])
            checks[name] = (run_torch_kit(args, cap) if name == "torch" else
                            run_child(name, args, root, cap))
        print(f"{checks[name]['status'].upper():4}  {name}: {checks[name]['detail']}", flush=True)
    counts = {s: sum(c["status"] == s for c in checks.values()) for s in ("pass", "fail", "skip")}
    return {"gpu": gpu, "no_gpu_reason": why_no_gpu or None, "caffe_root": str(root),
            "hw": format_hxw(args.hw), "budget_s": args.budget, "checks": checks,
            "head_to_head": {name: checks[name].get("head_to_head")
                             for name in ("caffe-time", "tensorrt", "torch")
                             if checks[name].get("head_to_head")},
            "paper": paper_figures(reference_root()),
            "passed": counts["pass"], "failed": counts["fail"], "skipped": counts["skip"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON summary")
    parser.add_argument("--gpu", type=int, default=0, help="CUDA device index")
    parser.add_argument("--budget", type=float, default=570.0,
                        help="seconds for all checks together (default: under 10 minutes)")
    parser.add_argument("--iterations", type=int, default=50, help="timed passes per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--hw", type=parse_hxw, default=(1024, 2048),
                        help="test size HxW (ICNet runs at the next 32k+1)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.rounds < 1 or args.budget <= 0:
        raise CliError("--iterations, --rounds and --budget must be positive")
    summary = check_all(args)
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


if __name__ == "__main__":
    sys.exit(run_cli(main, "gpu_check"))
