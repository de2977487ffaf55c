"""Typed model of the POP search space and its compact text form.

A backbone is the paper's fixed stem (conv1 3x3/2 -> 32, conv2 3x3/2 -> 64) followed by
three stages (paper stages 3/4/5, named res2/res3/res4 in the release), each a list of
blocks.  The first block of every stage has stride 2.  A block is either

* ``BasicBlock(width)``: two 3x3 convolutions (the first carries the stride), or
* ``BottleneckBlock(mid, out)``: 1x1 (mid) -> 3x3 (mid, carries the stride) -> 1x1 (out).

Text form (round-trips through :func:`parse_backbone` / :func:`format_backbone`)::

    [(64,64,64),(128,128,128),(256,256,256,512)]       # DF1, basic blocks
    [(64,64,128),(128/512,128/512,256/1024),(...)]     # bottlenecks written mid/out

A segmentation net adds the decoder's width controllers ``[C3,C4,C5]`` (``K`` stands for
the number of classes) and optionally the ``-d8`` head::

    [(64,64,64),(128,128,128),(256,256,256,512)]:[K,32,128]        # DF1-Seg
    [(64,64,64),(128,128,128),(256,256,256,512)]:[K,32,128]:d8     # DF1-Seg-d8
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from dfseg.base.errors import InputError

WIDTH_CHOICES = (64, 128, 256, 512, 1024)
STEM_WIDTHS = (32, 64)
STAGE_NAMES = ("res2", "res3", "res4")  # release names of paper stages 3, 4, 5
WC_CHOICES = ("K", 32, 64, 128, 256, 512)  # K = number of classes


class EncodingError(InputError, ValueError):
    """An impossible or malformed architecture encoding; the message says where."""


@dataclass(frozen=True, order=True)
class BasicBlock:
    width: int

    @property
    def out(self) -> int:
        return self.width

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.width,)

    def __str__(self) -> str:
        return str(self.width)


@dataclass(frozen=True, order=True)
class BottleneckBlock:
    mid: int
    out: int

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.mid, self.out)

    def __str__(self) -> str:
        return f"{self.mid}/{self.out}"


Block = Union[BasicBlock, BottleneckBlock]


def _where(stage: int, block: int | None = None) -> str:
    where = f"stage {stage + 3} ({STAGE_NAMES[stage]})"
    return where if block is None else f"{where}, block {block + 1}"


@dataclass(frozen=True)
class Backbone:
    """A DF backbone: three stages of blocks after the fixed stem."""

    stages: tuple[tuple[Block, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(tuple(s) for s in self.stages))
        validate_backbone(self)

    @property
    def blocks(self) -> list[tuple[int, int, Block]]:
        """(stage index, block index, block) in network order."""
        return [(s, b, blk) for s, stage in enumerate(self.stages) for b, blk in enumerate(stage)]

    @property
    def out_channels(self) -> int:
        return self.stages[-1][-1].out

    @property
    def stage_out_channels(self) -> tuple[int, ...]:
        return tuple(stage[-1].out for stage in self.stages)

    @property
    def depth(self) -> int:
        """Weighted layers as the paper counts them: stem, block convs, classifier."""
        convs = sum(2 if isinstance(b, BasicBlock) else 3 for _, _, b in self.blocks)
        return len(STEM_WIDTHS) + convs + 1

    def __str__(self) -> str:
        return format_backbone(self)


def has_projection(backbone: Backbone, stage: int, index: int) -> bool:
    """Whether block ``index`` of ``stage`` has a projection shortcut (``skipConv``).

    As in the release: the first block of each stage (it changes resolution), and every
    block whose configuration differs from the preceding block's (e.g. DF1 res4.4 widens
    256 -> 512, DF2A res4.5 changes the bottleneck's mid width 256 -> 512 at equal output).
    """
    if index == 0:
        return True
    return backbone.stages[stage][index] != backbone.stages[stage][index - 1]


def validate_backbone(backbone: Backbone) -> None:
    if len(backbone.stages) != len(STAGE_NAMES):
        raise EncodingError(f"a backbone has {len(STAGE_NAMES)} stages, got {len(backbone.stages)}")
    previous: Block | None = None
    for s, stage in enumerate(backbone.stages):
        if not stage:
            raise EncodingError(f"{_where(s)}: empty stage")
        for b, block in enumerate(stage):
            if not isinstance(block, (BasicBlock, BottleneckBlock)):
                raise EncodingError(f"{_where(s, b)}: not a block: {block!r}")
            for w in block.widths:
                if w not in WIDTH_CHOICES:
                    raise EncodingError(
                        f"{_where(s, b)}: width {w} not allowed (choices: {', '.join(map(str, WIDTH_CHOICES))})")
            if isinstance(block, BottleneckBlock) and block.out < block.mid:
                raise EncodingError(f"{_where(s, b)}: bottleneck output {block.out} narrower than its mid {block.mid}")
            if previous is not None:
                if block.out < previous.out:
                    raise EncodingError(
                        f"{_where(s, b)}: width {block.out} narrower than the preceding block's {previous.out}")
                if (isinstance(block, BottleneckBlock) and isinstance(previous, BottleneckBlock)
                        and block.mid < previous.mid):
                    raise EncodingError(
                        f"{_where(s, b)}: mid width {block.mid} narrower than the preceding block's {previous.mid}")
            previous = block


@dataclass(frozen=True)
class SegmentationNet:
    """DF-Seg: backbone, pyramid pooling on its output and the width-controlled decoder."""

    backbone: Backbone
    wc: tuple[int | str, int | str, int | str]
    num_classes: int = 19
    d8: bool = False
    pyramid_bins: tuple[int, ...] = field(default=(1, 2, 4, 8))

    def __post_init__(self) -> None:
        # Canonical form: a width equal to the number of classes is written K.
        object.__setattr__(self, "wc", tuple("K" if c == self.num_classes else c for c in self.wc))
        if self.num_classes < 1:
            raise EncodingError(f"number of classes must be positive, got {self.num_classes}")
        if len(self.wc) != 3:
            raise EncodingError(f"width controllers are [C3,C4,C5], got {len(self.wc)} values")
        for i, c in enumerate(self.wc):
            if c not in WC_CHOICES and c != self.num_classes:
                raise EncodingError(
                    f"width controller C{i + 3} = {c} not allowed (choices: K, 32, 64, 128, 256, 512)")

    @property
    def wc_widths(self) -> tuple[int, int, int]:
        """Width controllers with K replaced by the number of classes."""
        return tuple(self.num_classes if c == "K" else int(c) for c in self.wc)  # type: ignore[return-value]

    def __str__(self) -> str:
        return format_segmentation(self)


# ----------------------------------------------------------------------------- text form

_TOKEN = re.compile(r"\s*(\[|\]|\(|\)|,|[0-9]+/[0-9]+|[0-9]+|.)")


def _ascii_only(text: str, what: str = "encoding") -> None:
    """Widths are ASCII digits: ``str.isdigit`` also accepts superscript and fullwidth digits,
    which would otherwise be split into one block per digit or crash ``int``."""
    for col, ch in enumerate(text, 1):
        if not ch.isascii():
            raise EncodingError(f"{what} {text!r}, column {col}: {ch!r} (U+{ord(ch):04X}) is not "
                                f"an ASCII character; write widths with the digits 0-9")


def _tokens(text: str) -> list[tuple[int, str]]:
    _ascii_only(text)
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        out.append((m.start(1), m.group(1)))
        pos = m.end()
    return out


def parse_backbone(text: str) -> Backbone:
    """Parse ``[(64,64,64),(128,...),(...)]``; bottleneck blocks are written ``mid/out``."""
    tokens = _tokens(text)
    i = 0

    def expect(tok: str) -> None:
        nonlocal i
        if i >= len(tokens) or tokens[i][1] != tok:
            got = tokens[i][1] if i < len(tokens) else "end of text"
            col = tokens[i][0] + 1 if i < len(tokens) else len(text) + 1
            raise EncodingError(f"encoding {text!r}, column {col}: expected {tok!r}, got {got!r}")
        i += 1

    stages: list[list[Block]] = []
    expect("[")
    while True:
        expect("(")
        stage: list[Block] = []
        while i < len(tokens) and tokens[i][1] != ")":
            col, tok = tokens[i]
            if re.fullmatch(r"[0-9]+/[0-9]+", tok):
                mid, out = tok.split("/")
                stage.append(BottleneckBlock(int(mid), int(out)))
            elif tok.isdigit():
                stage.append(BasicBlock(int(tok)))
            else:
                raise EncodingError(f"encoding {text!r}, column {col + 1}: expected a width, got {tok!r}")
            i += 1
            if i < len(tokens) and tokens[i][1] == ",":
                i += 1
        expect(")")
        stages.append(stage)
        if i < len(tokens) and tokens[i][1] == ",":
            i += 1
            continue
        break
    expect("]")
    if i != len(tokens):
        raise EncodingError(f"encoding {text!r}, column {tokens[i][0] + 1}: unexpected {tokens[i][1]!r}")
    return Backbone(tuple(tuple(s) for s in stages))


def format_backbone(backbone: Backbone) -> str:
    return "[" + ",".join("(" + ",".join(str(b) for b in stage) + ")" for stage in backbone.stages) + "]"


def parse_wc(text: str, num_classes: int = 19) -> tuple[int | str, ...]:
    _ascii_only(text, "width controllers")
    m = re.fullmatch(r"\s*\[([^\]]*)\]\s*", text)
    if m is None:
        raise EncodingError(f"width controllers {text!r}: expected [C3,C4,C5]")
    values: list[int | str] = []
    for item in m.group(1).split(","):
        item = item.strip()
        if item == "K":
            values.append("K")
        elif item.isdigit():
            values.append(int(item))
        else:
            raise EncodingError(f"width controllers {text!r}: {item!r} is neither K nor a width")
    return tuple(values)


def parse_segmentation(text: str, num_classes: int = 19) -> SegmentationNet:
    """Parse ``BACKBONE:[C3,C4,C5]`` with an optional ``:d8`` suffix."""
    parts = text.rsplit(":", 2) if text.count(":") >= 1 else [text]
    d8 = False
    if parts[-1].strip() == "d8":
        d8 = True
        parts = parts[:-1]
    if len(parts) != 2:
        raise EncodingError(f"segmentation encoding {text!r}: expected BACKBONE:[C3,C4,C5][:d8]")
    return SegmentationNet(parse_backbone(parts[0]), parse_wc(parts[1]), num_classes=num_classes, d8=d8)


def format_segmentation(net: SegmentationNet) -> str:
    wc = "[" + ",".join(str(c) for c in net.wc) + "]"
    return f"{format_backbone(net.backbone)}:{wc}" + (":d8" if net.d8 else "")


def parse_encoding(text: str, num_classes: int = 19) -> Backbone | SegmentationNet:
    return parse_segmentation(text, num_classes) if ":" in text else parse_backbone(text)
