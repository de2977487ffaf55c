"""Floor-0 helpers: atomic writes keep the old file on failure, HxW parsing, the CLI line, and
the JSON / YAML readers' one error per bad file."""
import os

import pytest

from dfseg.base import (CliError, InputError, SizeError, TextFileError, atomic_write, atomic_write_group,
                          atomic_write_text, parse_hxw, read_json, read_yaml, run_cli)
from dfseg.base.sizes import parse_hxw_list


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["net.prototxt"]


def test_group_is_all_or_nothing(tmp_path):
    a, b = tmp_path / "a.prototxt", tmp_path / "sub" / "a.caffemodel"
    a.write_text("old")
    with pytest.raises(FileNotFoundError):
        atomic_write_group({a: "new", b: b"new"})  # b's folder is missing
    assert a.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.prototxt"]


def test_directory_destination_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path, "x")


@pytest.mark.parametrize("text,expected", [("1024x2048", (1024, 2048)), ("360X640", (360, 640))])
def test_parse_hxw(text, expected):
    assert parse_hxw(text) == expected


@pytest.mark.parametrize("text", ["1024", "0x5", "ax4", "６x4", "1024x2048x3", ""])
def test_parse_hxw_rejects(text):
    with pytest.raises(SizeError):
        parse_hxw(text)


def test_parse_hxw_list():
    assert parse_hxw_list("360x640, 1024x2048,360x640") == [(360, 640), (1024, 2048)]
    for bad in ("", "360x640,", "360x640,,1024x2048", "360x640;1024x2048", "３60x640"):
        with pytest.raises(SizeError, match="^--sizes: size"):
            parse_hxw_list(bad, "--sizes")


def test_run_cli_one_line(capsys):
    def bad():
        raise CliError("net.prototxt: no layers")
    assert run_cli(bad, prog="tool") == 2
    assert capsys.readouterr().err == "tool: error: net.prototxt: no layers\n"

    def bug():
        raise KeyError("x")
    assert run_cli(bug, prog="tool") == 1      # a bug is not bad input: exit 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "--debug" in err

    class NamedError(InputError, ValueError):
        pass

    def named():
        raise NamedError("spec.yaml: stages: not a list")
    assert run_cli(named, prog="tool") == 2    # any InputError subclass, no list needed
    assert capsys.readouterr().err == "tool: error: spec.yaml: stages: not a list\n"


def test_run_cli_shows_the_traceback_when_asked(capsys, monkeypatch):
    monkeypatch.setenv("DFSEG_DEBUG", "1")

    def bug():
        raise KeyError("x")
    assert run_cli(bug, prog="tool") == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("reader, content, problem", [
    (read_json, b"", "(empty)"),
    (read_json, b"  \n", "(empty)"),
    (read_json, b'{"entries": {"a": 1', "not JSON"),           # truncated
    (read_json, b'{"a": 1}\n{"b": 2}', "not JSON: Extra data, line 2"),
    (read_json, b"\x89PNG\r\n\x1a\n\xff", "not UTF-8"),
    (read_yaml, b"", "(empty)"),
    (read_yaml, b"# only a comment\n", "(empty)"),
    (read_yaml, b"stages: [1, 2\n", "not YAML"),                # truncated
    (read_yaml, b"a: 1\n b: 2\n", "not YAML"),
    (read_yaml, b"\x00\xff\xfe", "not UTF-8"),
])
def test_structured_readers_name_the_file_and_the_problem(tmp_path, reader, content, problem):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(TextFileError) as info:
        reader(path, "test input")
    message = str(info.value)
    assert message.startswith(f"{path}: not a test input") and problem in message and "\n" not in message


def test_structured_readers_return_the_document(tmp_path):
    (tmp_path / "a.json").write_text('{"a": [1, 2]}')
    (tmp_path / "a.yaml").write_text("a: [1, 2]\nb: {c: x}\n")
    assert read_json(tmp_path / "a.json") == {"a": [1, 2]}
    assert read_yaml(tmp_path / "a.yaml") == {"a": [1, 2], "b": {"c": "x"}}
    with pytest.raises(TextFileError, match="cannot read"):
        read_json(tmp_path / "absent.json")


def test_structured_readers_can_insist_on_a_mapping(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "scalar.yaml").write_text("just text\n")
    assert read_json(tmp_path / "list.json") == [1, 2]
    with pytest.raises(TextFileError, match=r"list.json: not a task \(a JSON object expected, found a list\)"):
        read_json(tmp_path / "list.json", "task", mapping=True)
    with pytest.raises(TextFileError, match=r"scalar.yaml: not a recipe \(a YAML mapping expected, found a str\)"):
        read_yaml(tmp_path / "scalar.yaml", "recipe", mapping=True)
