"""A quiet first run: the set-up (`make setup`) and the Caffe build (caffe/build.sh) say what
they do in one line per step, keep the whole output in a log file they name, and show its
last lines only when a step fails, with the step's exit status (mk/logged.sh).

The failures here are made on purpose (a fake apt-get, a `false` interpreter), so nothing is
built or installed; logs go to tmp_path."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOGGED = REPO / "mk" / "logged.sh"
NOISY = "for i in $(seq 1 200); do echo noise line $i; done"


def _env(**extra) -> dict:
    # a make of our own, not a sub-make of `make test` (its jobserver and flags)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DFSEG_VERBOSE", "DFSEG_LOG_TAIL")}
    env.update(extra)
    return env


def _run(*command, cwd=REPO, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, env=_env(**env))


def test_a_step_is_one_line_and_its_output_goes_to_the_log(tmp_path):
    log = tmp_path / "logs" / "setup.log"
    out = _run("bash", LOGGED, "--new", log, "setup: doing it (seconds)", "bash", "-c", NOISY)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("setup: doing it (seconds) ... done (") and out.stdout.count("\n") == 1
    assert out.stderr == ""
    assert "noise line 1\n" in log.read_text() and "noise line 200\n" in log.read_text()
    again = _run("bash", LOGGED, log, "setup: the next step", "true")
    assert again.returncode == 0 and "noise line 200" in log.read_text()   # appended, not restarted


def test_a_failed_step_shows_its_last_lines_and_keeps_its_exit_status(tmp_path):
    log = tmp_path / "step.log"
    log.write_text("an earlier step's output\n")
    out = _run("bash", LOGGED, log, "setup: failing (seconds)", "bash", "-c", f"{NOISY}; echo the cause >&2; exit 7")
    assert out.returncode == 7
    assert "setup: failing (seconds) ... failed (exit 7" in out.stdout
    assert "noise line 200" in out.stderr and "the cause" in out.stderr and f"full output: {log}" in out.stderr
    assert "noise line 100\n" not in out.stderr and "an earlier step" not in out.stderr   # the tail of this step
    assert "noise line 1\n" in log.read_text()


def test_a_failed_step_inside_a_set_e_script_is_reported_before_it_exits(tmp_path):
    script = f"set -euo pipefail; source {LOGGED}; logged_step {tmp_path}/s.log 'step' bash -c 'exit 5'; echo after"
    out = _run("bash", "-c", script)
    assert out.returncode == 5 and "failed (exit 5" in out.stdout and "after" not in out.stdout


def _fake_bin(tmp_path: Path) -> Path:
    """dpkg-query that finds no package, apt-get that fails after 200 lines, sudo that runs
    its command: the Caffe build's apt step fails, nothing is installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"dpkg-query": "exit 1",
               "apt-get": f"{NOISY}; echo 'E: Unable to locate package libfake-dev' >&2; exit 100",
               "sudo": 'exec "$@"'}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_caffe_build_reports_a_failed_step_with_its_log(tmp_path):
    bin_dir = _fake_bin(tmp_path)
    out = _run("bash", "caffe/build.sh", tmp_path / "caffe", PATH=f"{bin_dir}:{os.environ['PATH']}",
               DFSEG_CACHE=tmp_path / "cache", DFSEG_LOG_DIR=tmp_path / "logs")
    log = tmp_path / "logs" / "caffe-build.log"
    assert out.returncode == 100, out.stdout + out.stderr          # apt-get's status, kept
    assert "building Caffe (CPU)" in out.stderr and f"log: {log}" in out.stderr
    assert "updating apt's package lists (under a minute) ... failed (exit 100" in out.stdout
    assert "Unable to locate package" in out.stderr and "noise line 100\n" not in out.stderr
    assert "noise line 1\n" in log.read_text()
    assert len((out.stdout + out.stderr).splitlines()) < 60


def test_a_failed_setup_step_stops_make_with_the_log_tail(tmp_path):
    """`make setup` with an interpreter that fails: -W Makefile makes the venv step run."""
    out = _run("make", "--no-print-directory", "setup", "-W", "Makefile", "SYSTEM_PYTHON=false", f"LOGS={tmp_path}")
    assert out.returncode != 0
    assert "setup: creating .venv from false" in out.stdout and "failed (exit 1" in out.stdout
    assert f"full output: {tmp_path}/setup.log" in out.stderr
    assert "installing PyTorch" not in out.stdout                    # make stopped at the failed step


def test_a_set_up_machine_says_a_few_lines(tmp_path):
    """After `make test`'s own set-up and Caffe build: `make setup caffe` is a line or two.
    (A fake dpkg-query with DFSEG_SKIP_APT=1 stops a build that is not cached, at once.)"""
    if _run("make", "-q", "setup").returncode != 0:
        pytest.fail("`make setup` is not up to date here: run it (make test does) before this test")
    bin_dir = _fake_bin(tmp_path)
    out = _run("make", "--no-print-directory", "setup", "caffe", PATH=f"{bin_dir}:{os.environ['PATH']}",
               DFSEG_SKIP_APT="1")
    assert out.returncode == 0, f"Caffe is not built for the current sources (make caffe):\n{out.stderr}"
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) <= 2 and "up to date: build/caffe" in out.stderr, lines
