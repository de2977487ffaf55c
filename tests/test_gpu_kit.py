"""The GPU kit (`make gpu-kit`: tools/gpu_kit.py writes it with tools.gpu.kit_build,
tools/gpu/kit/run.py is its run.py; docs/gpu.md, "The GPU kit").

The kit's promise is that it runs where dfseg is not: the slow test here builds a bare
virtualenv from Debian's /usr/bin/python3 that holds torch, numpy and what they declare they
need (linked from .venv) and nothing else, checks that protobuf, yaml and dfseg do not import
there, and runs the kit in it on the CPU at the small check size; the `torch` check of
tools.gpu_check runs the kit on the CPU once more.  The rest tests run.py's parts as ordinary
code.  The file takes about 30 s on an idle 2-core machine (1.5 min under load), most of it
those two runs and building the kit."""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tools import gpu_kit
from tools.gpu.host import run_torch_kit

REPO = Path(__file__).resolve().parent.parent
KIT_SOURCES = REPO / "tools" / "gpu" / "kit"


def _load(path: Path, name: str):
    """A file of the kit, loaded by path as run.py loads its core (the kit is no package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kit_run = _load(KIT_SOURCES / "run.py", "dfseg_gpu_kit_run")
core = kit_run.core   # run.py's own gpu_kit_core, loaded from beside it
NETS = ("df1seg", "icnet", "df1seg_d8", "dflite_seg", "df2seg1", "df2seg2")
MAX_KIT_BYTES = 3_000_000


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return dict(env, PYTHONNOUSERSITE="1", OMP_NUM_THREADS="2", **extra)


def _run(cmd, cwd, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, reference_dir) -> Path:
    """`python -m tools.gpu_kit --out DIR` (needs ICNet's reference prototxt)."""
    out = tmp_path_factory.mktemp("kit") / "gpu-kit"
    done = _run([sys.executable, "-m", "tools.gpu_kit", "--out", out], cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "6 nets" in done.stdout
    return out


# ---------------------------------------------------------------- the kit's files

def test_the_kit_holds_the_modules_kit_json_and_run_py(kit, paper_tables):
    files = sorted(p.relative_to(kit).as_posix() for p in kit.rglob("*") if p.is_file())
    assert files == sorted([*(f"{n}.py" for n in NETS), *(f"256x512/{n}.py" for n in NETS),
                            "kit.json", "run.py", "gpu_kit_core.py"])
    assert not list(kit.rglob("*.pt")) and not list(kit.rglob("*.partial"))
    assert (kit / "run.py").read_bytes() == (KIT_SOURCES / "run.py").read_bytes()
    assert (kit / "gpu_kit_core.py").read_bytes() == (KIT_SOURCES / "gpu_kit_core.py").read_bytes()
    assert sum(p.stat().st_size for p in kit.rglob("*") if p.is_file()) < MAX_KIT_BYTES

    description = json.loads((kit / "kit.json").read_text())
    assert description["timing_size"] == "1024x2048" and description["check_size"] == "256x512"
    assert description["sizes"] == ["1024x2048", "256x512"]
    nets = {n["key"]: n for n in description["nets"]}
    assert list(nets) == list(NETS)
    assert [nets[k]["name"] for k in NETS] == ["DF1-Seg", "ICNet", "DF1-Seg-d8", "DFlite-Seg",
                                                "DF2-Seg1", "DF2-Seg2"]
    assert nets["icnet"]["timed_at"] == "1025x2049" and nets["df1seg"]["timed_at"] == "1024x2048"
    assert nets["icnet"]["modules"]["256x512"] == {"file": "256x512/icnet.py", "run_hw": "257x513",
                                                   "outputs": ["conv6_interp"]}
    # the paper's figures, as paper_tables.yaml has them
    release = {r["model"]: r for r in paper_tables["release_segmentation"]}
    for key in NETS[2:] + ("df1seg",):
        row = release[nets[key]["name"]]
        assert nets[key]["paper"] == {"size": "1024x2048", "titanx_caffe_fps": row["fps_titanx_caffe"],
                                      "gtx1080ti_tensorrt_fps": row["fps_1080ti_1024x2048"]}
    icnet = next(r for r in paper_tables["table3_1080ti"] if r["model"] == "ICNet")
    assert nets["icnet"]["paper"] == {"size": "1025x2049", "titanx_caffe_fps": icnet["fps_caffe"],
                                      "gtx1080ti_tensorrt_fps": None}
    # each module was made for the size kit.json says
    for net in nets.values():
        for entry in net["modules"].values():
            h, w = entry["run_hw"].split("x")
            assert f": (1, 3, {h}, {w})}}" in (kit / entry["file"]).read_text()


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}:{node.lineno}: relative import"
            roots.add(node.module.split(".")[0])
    return roots


def test_the_kit_imports_only_torch_numpy_and_the_standard_library(kit):
    stdlib = set(sys.stdlib_module_names)
    for module in kit.rglob("*.py"):
        allowed = stdlib | {"torch"} | ({"numpy"} if module.name in ("run.py", "gpu_kit_core.py") else set())
        outside = _imported_roots(module) - allowed
        assert not outside, f"{module.relative_to(kit)} imports {sorted(outside)}"
    assert {"torch", "numpy"} <= _imported_roots(kit / "run.py") & _imported_roots(kit / "gpu_kit_core.py")
    assert _imported_roots(kit / "df1seg.py") - stdlib == {"torch"}


@pytest.mark.parametrize("argv,words", [
    (["--sizes", "1024x"], "expected HxW"),
    (["--sizes", "32x64"], "too small"),
    (["--sizes", "1024x2048,"], "expected HxW"),
    (["--bogus"], "unrecognized arguments"),
    ([], "--out"),
])
def test_gpu_kit_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    out = ["--out", str(tmp_path / "kit")] if argv != [] else []
    assert gpu_kit.main([*out, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "kit").exists()


def test_gpu_kit_refuses_a_file_as_the_folder(tmp_path, capsys):
    target = tmp_path / "kit"
    target.write_text("mine")
    assert gpu_kit.main(["--out", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err and target.read_text() == "mine"


# ---------------------------------------------------------------- the kit without dfseg

def test_bare_python_lacks_dfseg_and_its_dependencies(bare_python, tmp_path):
    for module in ("google.protobuf", "yaml", "tools", "prototxt_gen", "caffe"):
        done = _run([bare_python, "-c", f"import {module}"], cwd=tmp_path)
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, (module, done.stderr)
    done = _run([bare_python, "-c", "import torch, numpy; print(torch.__version__)"], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == torch.__version__, done.stderr


def test_the_kit_runs_on_the_cpu_without_dfseg(kit, bare_python, tmp_path):
    """Copied elsewhere, as to a rented machine, and run by the bare Python."""
    copy = tmp_path / "gpu-kit"
    shutil.copytree(kit, copy)
    done = _run([bare_python, copy / "run.py", "--device", "cpu", "--rounds", "2", "--repeats", "1",
                 "--size", "256x512"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((copy / "gpu_check.json").read_text())
    assert result["machine"]["device"] == "cpu" and result["machine"]["gpu"] is None
    assert result["machine"]["torch"] == torch.__version__
    # the check: CPU against itself, said so; every output alive
    check = result["check"]
    assert check["trivial"] and "itself" in check["note"] and check["passed"]
    assert set(check["nets"]) == set(NETS)
    for row in check["nets"].values():
        assert row["fp32"]["scaled"] == 0 and row["fp32"]["ok"] and "fp16" not in row
        assert 0.5 < row["cpu_output_rms"] < 3   # calibrated: neither vanished nor exploded
    # the timing: FP32 only on the CPU, every net, both head-to-head nets and their ratio
    assert list(result["timing"]) == ["fp32"]
    fp32 = result["timing"]["fp32"]
    assert fp32["protocol"]["rounds"] == 2 and fp32["protocol"]["repeats"] == 1
    assert fp32["nets"]["df1seg"]["size"] == "256x512" and fp32["nets"]["icnet"]["size"] == "257x513"
    for key in NETS:
        t = fp32["nets"][key]
        assert len(t["samples_ms"]) == 2 and t["median_ms"] > 0 and t["min_ms"] <= t["median_ms"]
        assert t["samples"] == 2 and t["ci95_ms"][0] <= t["median_ms"] <= t["ci95_ms"][1]
        assert t["fps"] == pytest.approx(1000 / t["median_ms"])
    ratio = fp32["df1seg_over_icnet_fps"]
    rounds = {key: np.array(fp32["nets"][key]["round_medians_ms"]) for key in ("df1seg", "icnet")}
    per_round = rounds["icnet"] / rounds["df1seg"]
    assert ratio["per_round"] == pytest.approx(per_round.tolist())
    assert ratio["ratio"] == pytest.approx(float(np.median(per_round)))
    assert ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1]
    assert result["paper"]["df1seg"]["titanx_caffe_fps"] == 30.7
    assert result["paper"]["df1seg_over_icnet_titanx_caffe"] == pytest.approx(30.7 / 30.3)
    # the table: every net beside the paper's figures
    for name in ("DF1-Seg", "ICNet", "DF2-Seg2", "Titan X Caffe", "1080 Ti TensorRT", "106.1"):
        assert name in done.stdout
    assert "DF1-Seg / ICNet FPS ratio" in done.stdout and "another size" in done.stdout


def test_the_timing_size_modules_run_with_the_calibrated_weights(kit, tmp_path, capsys):
    """At 1024x2048 (ICNet 1025x2049) the modules are other files than the check's: they get
    the weights calibrated at 256x512 and must run with them (one round, CPU)."""
    out = tmp_path / "full.json"
    assert kit_run.main(["--kit", str(kit), "--device", "cpu", "--nets", "df1seg,icnet",
                         "--rounds", "1", "--repeats", "1", "--out", str(out)]) == 0
    fp32 = json.loads(out.read_text())["timing"]["fp32"]
    assert fp32["nets"]["df1seg"]["size"] == "1024x2048" and fp32["nets"]["icnet"]["size"] == "1025x2049"
    assert fp32["df1seg_over_icnet_fps"]["ratio"] > 0
    assert "another size" not in capsys.readouterr().out


def test_without_a_gpu_the_kit_says_so_and_exits_0(kit, bare_python, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: run.py runs for real")
    done = _run([bare_python, kit / "run.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no CUDA GPU is visible" in done.stdout
    assert "--device cpu" in done.stdout and not done.stderr


@pytest.mark.parametrize("argv,words", [
    (["--size", "256by512"], "expected HxW"),
    (["--size", "512x1024"], "this kit holds 1024x2048, 256x512"),
    (["--device", "tpu"], "expected cuda, cuda:N or cpu"),
    (["--nets", "df1seg,pspnet"], "the kit holds df1seg, icnet"),
    (["--rounds", "0"], "at least 1"),
    (["--repeats", "x"], "invalid int value"),
])
def test_run_py_bad_arguments_are_one_line_and_exit_2(kit, capsys, argv, words):
    assert kit_run.main(["--kit", str(kit), "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("run.py: error:") and words in err, err


def test_run_py_bad_size_in_the_bare_python(kit, bare_python, tmp_path):
    done = _run([bare_python, kit / "run.py", "--device", "cpu", "--size", "0x512"], cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--size '0x512'" in done.stderr


def test_run_py_alone_asks_for_the_whole_folder(bare_python, tmp_path):
    shutil.copy(KIT_SOURCES / "run.py", tmp_path / "run.py")
    done = _run([bare_python, tmp_path / "run.py", "--device", "cpu"], cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "gpu_kit_core.py is missing: copy the whole kit folder" in done.stderr


def test_run_py_without_a_kit_json(tmp_path, capsys):
    assert kit_run.main(["--kit", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kit.json" in err and "tools.gpu_kit" in err


# ---------------------------------------------------------------- run.py's parts

class _Tiny(nn.Module):
    """Every kind of layer calibrate() handles, with weights so small that without calibration
    the input's part of the activations shrinks many times per layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, groups=2, bias=False)
        self.pooled = nn.Conv2d(8, 8, 1)          # on a 2x2 map: too few values per channel
        self.fc = nn.Linear(8, 5)
        for m in self.modules():
            if hasattr(m, "weight") and not isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, std=0.01)

    def forward(self, x):
        outs = {}
        x = outs["conv"] = self.conv(x)
        x = outs["bn"] = self.bn(torch.relu(x))
        x = outs["grouped"] = self.grouped(x)
        x = outs["up"] = self.up(torch.relu(x))
        outs["pooled"] = self.pooled(nn.functional.adaptive_avg_pool2d(x, 2))
        outs["fc"] = self.fc(x.mean(dim=(2, 3)))
        return outs


def _channel_stats(y):
    axes = [0] + list(range(2, y.dim()))
    return y.mean(dim=axes), y.std(dim=axes, unbiased=False), y.pow(2).mean(dim=axes).sqrt()


def test_calibrate_gives_every_channel_unit_spread_and_a_positive_mean():
    torch.manual_seed(0)
    net = _Tiny().eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        before = net(x)
    # small weights: the input no longer reaches the output, which is the same for any image
    assert before["fc"].std(dim=0).max() < 1e-4 * before["fc"].abs().max()
    core.calibrate(net, x, torch.Generator().manual_seed(0))
    with torch.no_grad():   # a plain pass with the weights calibrate() changed
        after = net(x)
    for name in ("conv", "bn", "grouped"):
        mean, std, _ = _channel_stats(after[name])
        assert torch.allclose(std, torch.ones_like(std), atol=1e-4), name
        assert ((mean > 0.5 - 1e-4) & (mean < 1.5 + 1e-4)).all() and mean.std() > 0.05, name
    _, _, rms = _channel_stats(after["up"])      # no bias: unit RMS only
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)
    # 4x2x2 and 4 values per channel: the layer's spread is 1, not each channel's
    for name in ("pooled", "fc"):
        mean, std, _ = _channel_stats(after[name])
        assert std.pow(2).mean().sqrt() == pytest.approx(1, abs=1e-4) and std.std() > 0.05, name
        assert ((mean > 0.5 - 1e-4) & (mean < 1.5 + 1e-4)).all(), name


def test_calibrate_is_seeded():
    nets = []
    for _ in range(2):
        torch.manual_seed(3)
        net = _Tiny().eval()
        core.calibrate(net, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)),
                          torch.Generator().manual_seed(3))
        nets.append(net.state_dict())
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])


def test_scaled_difference():
    ref = [torch.tensor([1.0, -4.0]), torch.tensor([2.0])]
    assert core.scaled_difference([r.clone() for r in ref], ref)["scaled"] == 0
    got = [torch.tensor([1.0, -3.0]), torch.tensor([2.0])]
    assert core.scaled_difference(got, ref) == {"max_abs_diff": 1.0, "max_abs_cpu": 4.0, "scaled": 0.25}
    assert core.scaled_difference([torch.tensor([float("nan"), -4.0]), ref[1]], ref)["scaled"] == float("inf")
    assert core.scaled_difference([torch.zeros(3), ref[1]], ref)["scaled"] == float("inf")


def test_fps_ratio_is_the_median_of_per_round_ratios_with_an_interval():
    subject, baseline = [10.0, 11.0, 10.5, 30.0], [20.0, 22.0, 21.0, 31.0]   # a busy last round
    r = core.fps_ratio(subject, baseline)
    assert r["per_round"] == pytest.approx([2.0, 2.0, 2.0, 31 / 30])
    assert r["ratio"] == 2.0 and r["ci95"][0] <= 2.0 <= r["ci95"][1]
    assert core.fps_ratio([5.0], [10.0])["ci95"] == [2.0, 2.0]


@pytest.mark.parametrize("rounds,repeats,pass_ms,seconds,expected", [
    (10, 20, 10.0, 100.0, (10, 20)),     # 2 s of passes: fits
    (10, 20, 100.0, 10.0, (10, 10)),     # 20 s: repeats give way first
    (10, 20, 1000.0, 5.0, (5, 1)),       # one repeat is still 10 s: then rounds
    (10, 20, 1000.0, 1.0, (2, 1)),       # never fewer than 2 rounds (a ratio needs rounds)
    (1, 5, 1000.0, 1.0, (1, 1)),
])
def test_fit_to_budget(rounds, repeats, pass_ms, seconds, expected):
    assert core.fit_to_budget(rounds, repeats, pass_ms, seconds) == expected


def test_interleaved_rounds_alternate_the_order():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    measured = core.interleaved(runs, lambda run: run() or 1.0, rounds=3, repeats=2, warmup=1,
                                   budget_s=100)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert measured["round_medians_ms"] == {"a": [1.0] * 3, "b": [1.0] * 3}
    assert measured["protocol"]["cut_to_budget"] is False


def test_the_gpu_paths_run_on_the_cpu(kit):
    """What only a GPU run reaches, with the CPU in the GPU's place: the FP16 check (the CPU's
    FP16) and the report of a run with two precisions."""
    description = json.loads((kit / "kit.json").read_text())
    nets = [n for n in description["nets"] if n["key"] in ("df1seg", "icnet")]
    prepared = core.prepare(nets, kit, "256x512", "256x512", seed=0)
    check = core.run_checks(prepared, "cpu", ["fp32", "fp16"])
    assert check["passed"]
    for row in check["nets"].values():
        assert row["fp32"]["scaled"] == 0 and 0 < row["fp16"]["scaled"] < core.FP16_GUIDE
        assert row["fp16"]["ok"] and row["fp16"]["limit"] == core.FP16_GUIDE
    check.update(size="256x512", trivial=False)

    def timed(key, size, ms):   # four passes in two rounds
        return {"name": key, "size": size, **core.summarize([ms, ms, 1.1 * ms, ms], [ms, 1.05 * ms])}
    timing = {}
    for precision, ms in (("fp32", 5.0), ("fp16", 2.5)):
        timing[precision] = {"protocol": {"cut_to_budget": precision == "fp16"},
                             "nets": {"df1seg": timed("df1seg", "1024x2048", ms),
                                      "icnet": timed("icnet", "1025x2049", 2 * ms)},
                             "df1seg_over_icnet_fps": core.fps_ratio([ms, ms], [2 * ms, 2 * ms])}
    machine = {"gpu": "NVIDIA Test GPU", "driver": "999.1", "cuda": "12.8", "cudnn": 91000,
               "torch": "2.9.0", "python": "3.12.1", "device": "cuda:0", "cpu_threads": 16}
    result = {"machine": machine, "check": check, "timing": timing, "settings": {"budget_s": 240.0},
              "paper": kit_run.paper_figures(nets)}
    lines = kit_run.table(result, description).splitlines()
    assert lines[0].startswith("dfseg GPU kit on NVIDIA Test GPU (driver 999.1, CUDA 12.8")
    assert "fp16 ms" in lines[2] and "fp16 FPS" in lines[2] and "Titan X Caffe" in lines[2]
    df1seg = next(line for line in lines if line.startswith("DF1-Seg "))
    fp16 = f"{check['nets']['df1seg']['fp16']['scaled']:.1e}"
    assert df1seg.split()[:8] == ["DF1-Seg", "1024x2048", "0.0e+00", fp16, "5.00", "200.0", "2.50", "400.0"]
    assert df1seg.split()[-2:] == ["30.7", "106.1"]
    assert next(line for line in lines if line.startswith("ICNet ")).split()[-2:] == ["30.3", "-"]
    assert any("fp32 2.000 [2.000, 2.000]; fp16 2.000" in line and "Titan X Caffe: 1.013" in line
               for line in lines)
    assert not any("another size" in line for line in lines)
    assert lines[-1] == "note: fp16 rounds/repeats cut to fit --budget 240 s"


# ---------------------------------------------------------------- make gpu-check's torch check

def test_gpu_checks_torch_check_runs_the_kit(tmp_path):
    """tools.gpu_check's `torch` check builds the kit and runs run.py; here with the CPU in the
    GPU's place (device "cpu"), at the check size only."""
    args = argparse.Namespace(gpu=0, rounds=2, iterations=1, hw=(256, 512))
    result = run_torch_kit(args, 300, kit_dir=tmp_path / "kit", device="cpu")
    assert result["status"] == "pass", result["detail"]
    assert "6 nets against the CPU" in result["detail"] and "DF1-Seg/ICNet" in result["detail"]
    h2h = result["head_to_head"]
    assert h2h["engine"] == "torch" and set(h2h["fps"]["fp32"]) == set(NETS)
    timing = h2h["timings"]["fp32"]["df1seg"]   # a timing record (tools.report.timings)
    assert timing["engine"] == "torch fp32" and timing["samples"] == 2 and timing["machine"]["device"] == "cpu"
    assert timing["protocol"]["rounds"] == 2 and timing["median_ms"] == pytest.approx(1000 / h2h["fps"]["fp32"]["df1seg"])
    assert "ratio" in h2h["fps_ratio_df1seg_over_icnet"]["fp32"]
    assert json.loads((tmp_path / "kit" / "kit.json").read_text())["sizes"] == ["256x512"]
