"""Messages that used to mislead (issue 11): a Caffe log whose net glog cut at 30000 bytes, an
unparsable or binary net given to `caffe time`, fields --allow-unknown-fields drops."""
from __future__ import annotations

import io

import pytest

from prototxt_gen.generate import FORMS, net_for, to_text
from prototxt_gen.models import resolve
from prototxt_gen.netio import GLOG_MAX_MESSAGE_BYTES, parse_net_text, warn_dropped_fields
from prototxt_gen.unknown_fields import dropped_fields
from tools.analyze import main as analyze_main
from tools.caffe_time import main as caffe_time_main
from tools.report.log_parsers import caffe_failure_reason

# Deep enough that its printed net passes glog's 30000-byte message limit.
BIG = "[(" + ",".join(["64"] * 16) + "),(" + ",".join(["128"] * 16) + "),(" + ",".join(["256"] * 16) + ")]"
PREFIX = "I0308 15:13:33.170680 30521 net.cpp:53] "


def glog_net_log(net_text: str) -> str:
    """A Caffe log printing `net_text` the way glog does: one message of at most 29998 bytes."""
    message = (PREFIX + "Initializing net from parameters: \n" + net_text).encode()
    message = message[:GLOG_MAX_MESSAGE_BYTES - 2].decode(errors="ignore")
    if not message.endswith("\n"):
        message += "\n"                    # glog ends every message with a newline
    return ("I0308 15:13:33.100000 30521 caffe.cpp:343] Use CPU.\n" + message
            + "I0308 15:13:33.180000 30521 layer_factory.hpp:77] Creating layer input\n")


def one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "CPU busy" not in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in lines[0], err
    return lines[0]


# ------------------------------------------------------------------ log net cut by glog

def test_analyze_names_a_cut_log_net(tmp_path, capsys):
    text = to_text(net_for(resolve(BIG), "caffetime_mergebn", input_size=(64, 64)))
    assert len(text) > GLOG_MAX_MESSAGE_BYTES
    log = tmp_path / "big.log"
    log.write_text(glog_net_log(text))
    assert analyze_main([str(log)]) == 2
    one_error_line(capsys, log, "net is cut", "30000", "prototxt")


def test_a_log_net_under_the_limit_still_reads(tmp_path, capsys):
    text = to_text(net_for(resolve("df1seg"), "caffetime_mergebn", input_size=(64, 128)))
    assert len(text) < GLOG_MAX_MESSAGE_BYTES - 200
    log = tmp_path / "small.log"
    log.write_text(glog_net_log(text))
    assert analyze_main([str(log), "--json"]) == 0


def test_real_caffe_log_of_a_big_net(tmp_path, capsys, caffe_bin):
    net = tmp_path / "big.prototxt"
    net.write_text(to_text(net_for(resolve(BIG), "caffetime_mergebn", input_size=(32, 32))))
    log = tmp_path / "big.log"
    assert caffe_time_main(["run", str(net), "--iterations", "1", "--log", str(log), "--json"]) == 0
    capsys.readouterr()
    assert analyze_main([str(log)]) == 2
    one_error_line(capsys, log, "net is cut")
    assert analyze_main([str(net), "--phase", "TRAIN", "--json"]) == 0   # what the message says to do


# ------------------------------------------------------------------ caffe time on a bad net

@pytest.mark.parametrize("content, needles", [
    (b'name: "x"\nlayer {\n  name: "a"\n  typo: "Input"\n}\n', (":4:", "typo")),
    (b'name: "x"\nlayer {\n  name: "a"\n', ("Expected", "column")),
    (b"\x08\x96\x01\xff\xfe binary caffemodel", ("not a prototxt", "not UTF-8")),
])
def test_caffe_time_says_why_a_net_does_not_parse(tmp_path, capsys, caffe_bin, content, needles):
    net = tmp_path / "bad.prototxt"
    net.write_bytes(content)
    assert caffe_time_main(["run", str(net), "--iterations", "1"]) == 2
    one_error_line(capsys, net, *needles)


def test_caffe_failure_reason_carries_the_parse_error():
    log = ['I20261204 20:13:12.565732 14071 caffe.cpp:343] Use CPU.',
           '[libprotobuf ERROR google/protobuf/text_format.cc:337] Error parsing text-format '
           'caffe.NetParameter: 4:7: Message type "caffe.LayerParameter" has no field named "typo".',
           'F20261204 20:13:12.566649 14071 upgrade_proto.cpp:90] Check failed: '
           'ReadProtoFromTextFile(param_file, param) Failed to parse NetParameter file: bad.prototxt',
           '*** Check failure stack trace: ***', '    @     0x7f709f8261ed  google::LogMessage::Fail()']
    why = caffe_failure_reason(log)
    assert why.startswith("F20261204") and "line 4:7" in why and '"typo"' in why
    assert caffe_failure_reason([]) == "no output"


# ------------------------------------------------------------------ --allow-unknown-fields

FORK_NET = """name: "fork"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false } }
layer { name: "bn" type: "BatchNorm" bottom: "pool" top: "pool"
  fork_bn_param { slope: 1 nested { a: "x" "y" } } frozen: true }
"""


def test_every_dropped_field_is_named_with_its_line(tmp_path, capsys):
    path = tmp_path / "fork.prototxt"
    path.write_text(FORK_NET)
    assert analyze_main([str(path)]) == 2                     # strict: refused
    capsys.readouterr()
    assert analyze_main([str(path), "--allow-unknown-fields", "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err
    assert err[0].startswith(f"WARNING: {path}:4:") and "ceil_mode" in err[0] and "CAN CHANGE SHAPES" in err[0]
    assert err[1].startswith(f"warning: {path}:6:") and "fork_bn_param" in err[1] and "'bn'" in err[1]
    assert err[2].startswith(f"warning: {path}:6:") and "frozen" in err[2]


def test_dropped_fields_in_a_log_net_give_log_lines(tmp_path, capsys):
    log = tmp_path / "fork.log"
    log.write_text(glog_net_log(FORK_NET))
    assert analyze_main([str(log), "--allow-unknown-fields", "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"WARNING: {log}:6:")        # the net starts on the log's line 3


@pytest.mark.parametrize("form", FORMS)
def test_generated_nets_drop_nothing(form):
    text = to_text(net_for(resolve("df1seg"), form))
    assert dropped_fields(text) == []
    stream = io.StringIO()
    assert warn_dropped_fields(text, parse_net_text(text), "x", stream=stream) == 0 and not stream.getvalue()


def test_walker_handles_the_whole_text_format():
    text = ('name: "a" "b" # comment with { brace\n'
            'layer < name: \'l\' type: "Input" top: ["t1", "t2"] unknown_list: [{a: 1}, {b: 2}] >\n'
            'layer { name: "m" unknown_scalar: -1.5e3; unknown_enum: FOO, top: "x" }\n'
            'layer { name: "n" convolution_param { num_output: 1 bogus { deep { deeper: 1 } } } }\n')
    net = parse_net_text(text, allow_unknown_fields=True)   # protobuf agrees it is well formed
    assert [l.name for l in net.layer] == ["l", "m", "n"] and list(net.layer[0].top) == ["t1", "t2"]
    assert [(d.line, d.path) for d in dropped_fields(text)] == [
        (2, "layer[0].unknown_list"), (3, "layer[1].unknown_scalar"), (3, "layer[1].unknown_enum"),
        (4, "layer[2].convolution_param.bogus")]
