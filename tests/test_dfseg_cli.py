"""`dfseg`, the one command (issue 22): every job a subcommand, one error path, the old entry
points (`python -m X`, `pop`) unchanged."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from dfseg import cli
from pop import cli_parser as pop_cli_parser
from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dfseg", "prototxt_gen", "pop", "solvers", "tools")
BIN = Path(sys.executable).parent   # the virtualenv's scripts: dfseg, pop

# modules with a main() that are no job of a user, and why
NOT_SUBCOMMANDS = {
    "dfseg.cli": "the dfseg command itself",
    "tools.gpu_runs": "one GPU check in a process of its own, started by tools.gpu_check (dfseg gpu-check)",
    "tools.gpu.kit.run": "the GPU kit's standalone run.py: copied to a CUDA machine without dfseg",
}

SPACE = {"stages": [{"widths": [64, 128, 256], "max_depth": 3},
                    {"widths": [128, 256], "max_depth": 3},
                    {"widths": [256, 512], "max_depth": 3}],
         "input_size": [224, 224], "latency_ms": [1.0, 2.0]}


def run(*argv, cwd=REPO, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DFSEG_DEBUG", "DFSEG_TRACEBACK")}
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.run([str(a) for a in argv], cwd=cwd, text=True, env=env, **kw)


def dfseg_script() -> Path:
    script = BIN / "dfseg"
    assert script.is_file(), (f"{script} missing: pyproject.toml declares it; `make setup` reinstalls "
                              f"(or: {sys.executable} -m pip install --no-deps -e .)")
    return script


def _modules_with_main():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
                yield ".".join(path.relative_to(REPO).with_suffix("").parts)


def _module_file(module: str) -> Path:
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


# ------------------------------------------------------------------------- every job, once
def test_every_module_with_a_main_is_a_subcommand_or_explained():
    served = {c.module for c in cli.COMMANDS.values()}
    found = set(_modules_with_main())
    missing = sorted(found - served - set(NOT_SUBCOMMANDS))
    assert not missing, f"modules with a main() that no `dfseg` subcommand reaches: {missing}"
    assert not set(NOT_SUBCOMMANDS) - found, "NOT_SUBCOMMANDS names a module without main(): drop it"
    gone = sorted(m for m in served if m not in found)
    assert not gone, f"subcommands whose module does not exist or has no main(): {gone}"
    assert len(served) == len(cli.COMMANDS), "two subcommands run the same module"


def test_help_lists_every_job_in_workflow_order_and_imports_nothing_heavy():
    probe = ("import contextlib, io, json, sys\n"
             "from dfseg.cli import main\n"
             "out = io.StringIO()\n"
             "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
             "    main(['--help'])\n"
             "print(json.dumps({'help': out.getvalue(), 'modules': sorted(sys.modules)}))\n")
    done = run(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    text, modules = result["help"], result["modules"]
    assert text.startswith("usage: dfseg ")
    positions = [text.index(f"\n{title}:\n") for title, _ in cli.GROUPS]
    assert positions == sorted(positions)
    for name, command in cli.COMMANDS.items():
        assert f"\n  {name}  " in text and command.summary in text, name
    heavy = [m for m in modules if m.split(".")[0] in
             ("torch", "caffe", "onnx", "onnxruntime", "cv2", "optuna", "matplotlib", "tensorrt",
              "tools", "pop", "solvers", "prototxt_gen")]
    assert not heavy, f"`dfseg --help` imported {heavy[:10]}"
    assert [t for t, _ in cli.GROUPS][:2] == ["build the nets", "search (Partial Order Pruning)"]


def test_console_script_python_m_and_version():
    script = run(dfseg_script(), "--help")
    module = run(sys.executable, "-m", "dfseg", "--help")
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout and not script.stderr
    version = run(dfseg_script(), "--version")
    assert version.returncode == 0 and version.stdout.startswith("dfseg ")


# ------------------------------------------------------------------- the jobs of the issue
def test_generate_writes_what_prototxt_gen_writes_and_analyze_reads_it(tmp_path):
    ours, theirs = tmp_path / "dfseg", tmp_path / "module"
    done = run(dfseg_script(), "generate", "df1seg", "--out", ours)
    assert done.returncode == 0, done.stderr
    assert run(sys.executable, "-m", "prototxt_gen", "df1seg", "--out", theirs).returncode == 0
    files = sorted(p.name for p in ours.iterdir())
    assert files == sorted(p.name for p in theirs.iterdir()) and "df1seg_deploy.prototxt" in files
    assert all((ours / f).read_bytes() == (theirs / f).read_bytes() for f in files)

    net = ours / "df1seg_deploy.prototxt"
    analysis = run(dfseg_script(), "analyze", net, "--input", "1x3x1024x2048")
    assert analysis.returncode == 0, analysis.stderr
    assert "MACs" in analysis.stdout
    assert analysis.stdout == run(sys.executable, "-m", "tools.analyze", net, "--input", "1x3x1024x2048").stdout


@pytest.fixture
def space_files(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    return tmp_path


def test_pop_search_through_dfseg_pop_and_python_m_pop_alike(space_files):
    """The surrogate search, once per entry point, each in a folder of its own: the same output."""
    args = ["search", "--space", space_files / "space.yaml", "--lut", space_files / "lut.json",
            "--allow-foreign-lut", "--storage", "sqlite:///pop.db", "--study", "s", "--seed", 3, "-K", 8,
            "--quiet", "--workdir", "runs"]
    results = []
    for name, command in (("dfseg", [dfseg_script(), "pop"]), ("pop", [BIN / "pop"]),
                          ("module", [sys.executable, "-m", "pop"])):
        (space_files / name).mkdir()
        results.append(run(*command, *args, cwd=space_files / name))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert results[0].stdout == results[1].stdout == results[2].stdout
    assert "trained " in results[0].stdout and "boundary" in results[0].stdout


def test_a_closed_pipe_ends_pop_quietly(space_files):
    """`pop space ... | head -1`: pop caught OSError before its subclass BrokenPipeError, so a
    reader that stopped reading gave `error: [Errno 32] Broken pipe` and exit 2."""
    args = ["space", "--space", space_files / "space.yaml", "--lut", space_files / "lut.json",
            "--allow-foreign-lut"]
    for command in ([sys.executable, "-m", "pop"], [BIN / "pop"], [dfseg_script(), "pop"], [dfseg_script()]):
        read, write = os.pipe()
        os.close(read)   # the reader is gone before the first line is written
        try:
            done = run(*command, *(args if len(command) > 1 else ["--help"]), stdout=write)
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (0, ""), command


# --------------------------------------------------------------------------- errors
def test_bad_input_is_one_line_and_exit_2(space_files):
    done = run(dfseg_script(), "pop", "space", "--space", space_files / "missing.yaml", "--lut",
               space_files / "lut.json")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"dfseg pop space: error: {space_files / 'missing.yaml'}: cannot read "
                                        f"(No such file or directory)"]
    old = run(BIN / "pop", "space", "--space", space_files / "missing.yaml", "--lut", space_files / "lut.json")
    assert old.returncode == 2 and old.stderr == done.stderr.replace("dfseg pop", "pop", 1)

    typo = run(sys.executable, "-m", "dfseg", "genrate", "df1seg")
    assert typo.returncode == 2
    assert typo.stderr.splitlines() == ["dfseg: error: unknown command 'genrate'; did you mean 'generate'? "
                                        "(see dfseg --help)"]
    unknown_flag = run(sys.executable, "-m", "dfseg", "--verbose", "generate")
    assert unknown_flag.returncode == 2 and len(unknown_flag.stderr.splitlines()) == 1

    bare = run(sys.executable, "-m", "dfseg")
    assert bare.returncode == 2 and bare.stderr.startswith("usage: dfseg ") and not bare.stdout


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_subcommand_help_names_dfseg(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: dfseg {name}")


def test_every_command_main_takes_prog():
    """main(argv=None, prog=None): `dfseg NAME` passes its name for the usage line."""
    lacking = []
    for command in cli.COMMANDS.values():
        tree = ast.parse(_module_file(command.module).read_text())
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        if [a.arg for a in main.args.args] != ["argv", "prog"]:
            lacking.append(command.module)
    assert not lacking, f"main() is not main(argv=None, prog=None) in {lacking}"


@pytest.fixture
def no_debug(monkeypatch):
    """No traceback asked for; and `dfseg --debug` setting DFSEG_DEBUG undone after the test
    (monkeypatch.delenv alone restores nothing when the variable was not set)."""
    for name in ("DFSEG_DEBUG", "DFSEG_TRACEBACK"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _boom(*_args, **_kw):
    raise ZeroDivisionError("a bug planted by the test")


def test_a_bug_is_exit_1_and_debug_shows_its_traceback(space_files, monkeypatch, capsys, no_debug):
    monkeypatch.setattr(pop_cli_parser, "cmd_space", _boom)
    args = ["pop", "space", "--space", str(space_files / "space.yaml"), "--lut", str(space_files / "lut.json"),
            "--allow-foreign-lut"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["dfseg pop space: internal error: ZeroDivisionError: a bug planted by the test "
                                "(a bug: rerun with --debug or DFSEG_DEBUG=1 for the traceback)"]
    assert cli.main(["--debug", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_boom" in err
    assert os.environ["DFSEG_DEBUG"] == "1"   # commands started in child processes see it too


def test_a_bug_in_a_command_without_its_own_error_path(monkeypatch, capsys, no_debug):
    """The dispatcher's run_cli catches what a command module lets through."""
    module = types.ModuleType("dfseg_test_boom")
    module.main = lambda argv=None, prog=None: _boom()
    monkeypatch.setitem(sys.modules, "dfseg_test_boom", module)
    monkeypatch.setitem(cli.COMMANDS, "boom", cli.Command("boom", "dfseg_test_boom", "a planted bug"))
    assert cli.main(["boom"]) == 1
    assert capsys.readouterr().err.startswith("dfseg boom: internal error: ZeroDivisionError")
    assert cli.main(["--debug", "boom"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_interrupted_search_says_its_trials_are_kept(monkeypatch, capsys):
    def interrupted(_args):
        raise KeyboardInterrupt
    monkeypatch.setattr(pop_cli_parser, "cmd_space", interrupted)
    assert cli.main(["pop", "space", "--max-depth", "1,1,1", "--lut", "x"]) == 130
    assert capsys.readouterr().err == "dfseg pop space: interrupted (completed trials are kept in the study)\n"


def test_docs_list_every_subcommand():
    text = (REPO / "docs" / "cli.md").read_text()
    missing = [name for name, c in cli.COMMANDS.items()
               if f"`dfseg {name}" not in text or f"`python -m {c.module.removesuffix('.__main__')}`" not in text]
    assert not missing, f"docs/cli.md lacks {missing}"
    assert "docs/cli.md" in (REPO / "README.md").read_text()
