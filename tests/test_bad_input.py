"""Bad input gets one line and exit 2: non-ASCII digits in encodings, nets with no layers."""
from __future__ import annotations

import pytest

from prototxt_gen.__main__ import main as generate_main
from prototxt_gen.encoding import EncodingError, parse_backbone, parse_segmentation
from tools.analyze import main as analyze_main


@pytest.mark.parametrize("text", ["[(6⁴,64),(128,128),(256,512)]",        # superscript
                                  "[(６４,64),(128,128),(256,512)]",        # fullwidth
                                  "[(64,64),(128,128),(256,٥12)]"])        # Arabic-Indic
def test_non_ascii_digits_are_refused_not_split(text):
    with pytest.raises(EncodingError, match="not an ASCII character"):
        parse_backbone(text)


def test_non_ascii_width_controller():
    with pytest.raises(EncodingError, match="width controllers"):
        parse_segmentation("[(64,64),(128,128),(256,512)]:[3²,32,512]")


def test_generator_cli_one_line(tmp_path, capsys):
    assert generate_main(["[(6⁴,64),(128,128),(256,512)]", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "U+2074" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content", ["", "name: \"x\"\n", "# only a comment\n"])
def test_analyze_refuses_a_net_without_layers(tmp_path, capsys, content):
    path = tmp_path / "empty.prototxt"
    path.write_text(content)
    assert analyze_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no layers" in err and str(path) in err
