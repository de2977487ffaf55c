"""dfseg installs as a package: `pip install .` (not editable) into a fresh virtualenv gives a
working `dfseg` / `pop` / `python -m ...`, its data (the named models, the measured order
check) included, run away from the checkout.

The dependencies are PyPI's job, not this test's (torch alone is GBs): the fresh virtualenv
sees the project virtualenv's site-packages through a .pth file, after its own.  The test
proves that every dfseg package then comes from the fresh site-packages, not the checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dfseg", "prototxt_gen", "pop", "tools", "solvers", "caffe_models")
# what a checkout holds beside the package sources: virtualenv, build outputs, measurements,
# the prototxts `make <model>` writes into caffe_models/<model>/
SKIP_TOP = {".git", ".venv", "build", "bench", ".pytest_cache", ".hypothesis"}
SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}],
         "input_size": [64, 64], "latency_ms": [0.0, 1e9]}


def _copy_checkout(dest: Path) -> Path:
    def ignore(folder, names):
        rel = Path(folder).relative_to(REPO)
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if rel == Path("."):
            skip |= SKIP_TOP & set(names)
        if rel == Path("caffe_models"):
            skip |= {n for n in names if (Path(folder) / n).is_dir() and n != "zoo"}
        return skip
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The fresh virtualenv's bin/ after `pip install --no-deps .` from a copy of the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = _copy_checkout(root / "checkout")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=_env()).stdout.strip())
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    # a .pth line appends the project's site-packages after the fresh one (its own .pth files,
    # the editable install's finder among them, are not run)
    (site / "project_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "--no-input", "-q", str(source)],
                         capture_output=True, text=True, env=_env(), cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    shutil.rmtree(source)   # nothing can come from the copy either
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args) -> subprocess.CompletedProcess:
    command = [str(bin_dir / args[0]), *map(str, args[1:])]
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=_env())
    assert out.returncode == 0, f"{' '.join(command)}:\n{out.stdout}\n{out.stderr}"
    return out


def test_the_installed_package_comes_from_the_fresh_site_packages(installed, tmp_path):
    code = ("import importlib, sys\n"
            f"for name in {PACKAGES!r}:\n"
            "    print(name, importlib.import_module(name).__file__)\n")
    out = _run(installed, tmp_path, "python", "-c", code)
    site = Path(_run(installed, tmp_path, "python", "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    for line in out.stdout.splitlines():
        name, where = line.split(" ", 1)
        assert Path(where).is_relative_to(site), f"{name} imported from {where}, not from {site}"
        assert not Path(where).is_relative_to(REPO), f"{name} imported from the checkout"


def test_generate_and_analyze_from_the_installed_package(installed, tmp_path):
    out = _run(installed, tmp_path, "dfseg", "generate", "df1seg", "--out", tmp_path / "D")
    net = tmp_path / "D" / "df1seg_deploy_mergebn.prototxt"
    assert net.is_file(), out.stdout
    _run(installed, tmp_path, "python", "-m", "prototxt_gen", "dflite_seg", "--out", tmp_path / "E")
    assert (tmp_path / "E" / "dflite_seg_deploy.prototxt").is_file()
    table = _run(installed, tmp_path, "python", "-m", "tools.analyze", net).stdout
    assert "MACs" in table or "macs" in table.lower(), table


def test_pop_on_the_surrogate_from_the_installed_package(installed, tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    common = ["--space", "space.yaml", "--lut", "lut.json", "--allow-foreign-lut"]
    space = _run(installed, tmp_path, "pop", "space", *common).stdout
    assert "architectures" in space, space
    out = _run(installed, tmp_path, "dfseg", "pop", "search", *common, "--storage", "sqlite:///pop.db",
               "--study", "s", "-K", 3, "--quiet", "--workdir", "runs").stdout
    assert "trained" in out, out
    # the robustness bench's measured figure is package data too
    _run(installed, tmp_path, "python", "-c",
         "from pop.robustness import load_measured; assert 0 < load_measured()['inverted_pairs_pct'] < 50")
    # the Caffe evaluator a worker trusts is declared in the installed metadata (an entry point)
    _run(installed, tmp_path, "python", "-c", "from pop.evaluators import trusted_evaluators as t; "
         "assert 'solvers.pop_evaluator:CaffeEvaluator' in t(), t()")
