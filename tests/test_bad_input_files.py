"""Binary files where text is expected, and output paths that cannot be written: exit 2 and
one line naming the file and the problem (issue 11), never a traceback."""
from __future__ import annotations

import pytest
import yaml

from pop import bench as pop_bench
from pop.__main__ import main as pop_main
from pop.lut import FlopsProxy, table_from_model
from pop.space import SpaceConfig
from tests.test_atomic_outputs import _disk_full_on_write
from solvers.solver_gen import main as solver_gen_main
from tools.analyze import main as analyze_main
from tools.tables import main as tables_main

# what a caffemodel, an image or a zip looks like to a text reader: not UTF-8
BINARY = b"\x0a\x05df1\xff\xfe\x00\x89PNG\r\n\x1a\n" + bytes(range(128, 256))
SPACE = {"stages": [{"widths": [64, 128], "max_depth": 2}, {"widths": [128, 256], "max_depth": 2},
                    {"widths": [256, 512], "max_depth": 2}],
         "input_size": [224, 224], "latency_ms": [0.0, 1e9]}
NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table_from_model(SpaceConfig.from_dict(SPACE), FlopsProxy()).save(tmp_path / "lut.json")
    (tmp_path / "binary.bin").write_bytes(BINARY)
    (tmp_path / "net.prototxt").write_text(NET)
    return tmp_path


def one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, err
    return err


@pytest.mark.parametrize("args", [
    ["space", "--space", "{d}/binary.bin", "--lut", "{d}/lut.json", "--allow-foreign-lut"],
    ["space", "--space", "{d}/space.yaml", "--lut", "{d}/binary.bin", "--allow-foreign-lut"],
    ["search", "--space", "{d}/space.yaml", "--lut", "{d}/lut.json", "--allow-foreign-lut",
     "--evaluator", "csv:{d}/binary.bin", "--storage", "sqlite:///{d}/p.db", "--quiet"],
    ["search", "--decoder", "{d}/binary.bin", "--storage", "sqlite:///{d}/p.db", "--quiet"],
])
def test_pop_binary_inputs(files, capsys, args):
    assert pop_main([a.format(d=files) for a in args]) == 2
    one_error_line(capsys, files / "binary.bin", "not a", "not UTF-8")


@pytest.mark.parametrize("out, problem", [("net.prototxt", "is a file"),
                                          ("binary.bin", "is a file")])
def test_pop_report_out_is_a_file(files, capsys, out, problem):
    assert pop_main(["report", "--storage", f"sqlite:///{files}/none.db", "--out", str(files / out)]) == 2
    one_error_line(capsys, files / out, problem)


@pytest.mark.parametrize("plot, problem", [(".", "is a directory"),
                                           ("net.prototxt/plot.png", "net.prototxt"),
                                           ("plot.xyz", "not supported")])
def test_analyze_plot_unwritable(files, capsys, plot, problem):
    before = sorted(p.name for p in files.iterdir())
    assert analyze_main([str(files / "net.prototxt"), "--plot", str(files / plot)]) == 2
    err = one_error_line(capsys, "--plot", problem)
    assert "plot" in err
    assert sorted(p.name for p in files.iterdir()) == before   # no temp file left behind


def test_analyze_plot_creates_missing_folders(files, capsys):
    assert analyze_main([str(files / "net.prototxt"), "--plot", str(files / "a" / "b" / "plot.png")]) == 0
    assert (files / "a" / "b" / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_plot_on_a_full_disk_keeps_the_old_png(files, capsys, monkeypatch):
    old = files / "plot.png"
    old.write_bytes(b"\x89PNG old picture")
    _disk_full_on_write(monkeypatch)
    assert analyze_main([str(files / "net.prototxt"), "--plot", str(old)]) == 2
    one_error_line(capsys, old, "No space left")
    assert old.read_bytes() == b"\x89PNG old picture"


def test_pop_report_on_a_full_disk_keeps_the_old_report(files, capsys, monkeypatch):
    url = f"sqlite:///{files}/p.db"
    assert pop_main(["search", "--space", str(files / "space.yaml"), "--lut", str(files / "lut.json"),
                     "--allow-foreign-lut", "--storage", url, "--study", "s", "-K", "3", "--quiet",
                     "--workdir", str(files / "runs")]) == 0
    out = files / "report"
    assert pop_main(["report", "--storage", url, "--study", "s", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    _disk_full_on_write(monkeypatch)
    assert pop_main(["report", "--storage", url, "--study", "s", "--out", str(out)]) == 2
    one_error_line(capsys, out, "No space left")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ------------------------------------------------------- JSON and YAML inputs: empty, cut short, binary
BROKEN = {"empty": b"", "truncated_json": b'{"version": 2, "entries": {"basic:64x', "truncated_yaml": b"stages:\n  - {widths: [64",
          "binary": BINARY}


@pytest.mark.parametrize("broken", sorted(BROKEN))
@pytest.mark.parametrize("args", [
    ["space", "--space", "{d}/broken", "--lut", "{d}/lut.json", "--allow-foreign-lut"],
    ["space", "--space", "{d}/space.yaml", "--lut", "{d}/broken", "--allow-foreign-lut"],
    ["search", "--decoder", "{d}/broken", "--storage", "sqlite:///{d}/p.db", "--quiet"],
])
def test_pop_broken_structured_inputs(files, capsys, args, broken):
    (files / "broken").write_bytes(BROKEN[broken])
    assert pop_main([a.format(d=files) for a in args]) == 2
    one_error_line(capsys, files / "broken", "not a")


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_pop_bench_refuses_a_broken_measured_file_before_benchmarking(files, capsys, monkeypatch, broken):
    """`make bench-pop` runs 20 minutes before it reads --measured: a bad one must stop it first."""
    (files / "broken").write_bytes(BROKEN[broken])
    monkeypatch.setattr(pop_bench, "_search_space", lambda args: pytest.fail("benchmark started"))
    assert pop_bench.main(["--measured", str(files / "broken"), "--out", str(files / "pop.json")]) == 2
    one_error_line(capsys, "pop.bench: error:", files / "broken")


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_solver_recipe_and_tables_paper_broken(files, capsys, broken):
    (files / "broken.yaml").write_bytes(BROKEN[broken])
    assert solver_gen_main(["cityscapes", "--train-net", str(files / "net.prototxt"), "--recipe",
                            str(files / "broken.yaml"), "--out", str(files / "solver.prototxt")]) == 2
    one_error_line(capsys, files / "broken.yaml", "not a training recipe")
    assert tables_main(["--logs", str(files), "--paper", str(files / "broken.yaml"), "--quiet"]) == 2
    one_error_line(capsys, files / "broken.yaml", "not a paper tables")
