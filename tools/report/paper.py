"""The paper's figures: the one reader of ``paper_tables.yaml`` (the reference material's
transcription of the paper's and the release README's tables), and the views of it that the
head-to-head bench, the GPU checks, the GPU kit and the tables take.

The file is optional: without the reference material (``$DFSEG_REFERENCE``) every view is
empty and the measured figures stand alone.
"""
from __future__ import annotations

from pathlib import Path

from dfseg.base.sizes import format_hxw
from dfseg.base.textfile import read_yaml
from prototxt_gen.models import load_model, model_names
from tools.models.registry import ICNET, reference_root

__all__ = ["PAPER_TABLES", "TABLE4_SIZES", "TABLE5_SIZES", "head_to_head_figures", "kit_figures", "known_model_names",
           "paper_tables_path", "read_paper_tables", "titanx_figures"]

PAPER_TABLES = "paper_tables.yaml"
#: Table 4's sizes as the paper names them (width x height) -> (H, W)
TABLE4_SIZES = {"640x360": (360, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
#: Table 5's (TX2) sizes, likewise
TABLE5_SIZES = {"480x320": (320, 480), "640x360": (360, 640), "1280x720": (720, 1280)}
FULL_SIZE, ICNET_SIZE = "1024x2048", "1025x2049"   # the head-to-head sizes (ICNet's 32k + 1)


def paper_tables_path() -> Path:
    return reference_root() / PAPER_TABLES


def read_paper_tables(path: Path | None = None) -> dict | None:
    """The tables as a mapping, or None where the file (by default the reference material's)
    does not exist; a file that is no YAML mapping is a TextFileError naming it."""
    path = path or paper_tables_path()
    if not path.is_file():
        return None
    return read_yaml(path, "paper tables (YAML)", mapping=True)


def _rows(tables: dict | None, table: str) -> list[dict]:
    return (tables or {}).get(table) or []


def titanx_figures(tables: dict | None) -> dict:
    """{(paper name, "HxW"): (ms or None, fps)}: the Titan X `caffe time` figures (the release
    README's at 1024x2048, Table 3's ICNet at 1025x2049, Table 4's at its three sizes)."""
    figures = {}
    for row in _rows(tables, "release_segmentation"):
        if row.get("fps_titanx_caffe"):
            figures[(row["model"], FULL_SIZE)] = (None, row["fps_titanx_caffe"])
    for row in _rows(tables, "table3_1080ti"):
        if row["model"] == "ICNet" and row.get("fps_caffe"):
            figures[("ICNet", ICNET_SIZE)] = (None, row["fps_caffe"])
    for row in _rows(tables, "table4_titanx"):
        for name, hw in TABLE4_SIZES.items():
            if row.get(name):
                ms, fps = row[name]
                figures[(row["model"], format_hxw(hw))] = (ms, fps)
    return figures


def head_to_head_figures(tables: dict | None) -> dict | None:
    """Table 3's DF1-Seg and ICNet: Titan X `caffe time` FPS and 1080 Ti TensorRT FPS (None
    without the tables)."""
    if tables is None:
        return None
    rows = {r["model"]: r for r in _rows(tables, "table3_1080ti")}
    df1, icnet = rows.get("DF1-Seg", {}), rows.get("ICNet", {})
    return {"titanx_caffe_fps": {"df1seg": df1.get("fps_caffe"), ICNET: icnet.get("fps_caffe")},
            "1080ti_tensorrt_fps": {"df1seg": df1.get("fps"), ICNET: icnet.get("fps")}}


def kit_figures(tables: dict | None) -> dict[str, dict]:
    """{paper name: {"titanx_caffe_fps", "gtx1080ti_tensorrt_fps"}} at 1024x2048 (ICNet
    1025x2049): the release README's segmentation table, then Table 3 for what it lacks
    (ICNet's Caffe figure; the paper gives no TensorRT figure for ICNet)."""
    figures: dict[str, dict] = {}
    for row in _rows(tables, "release_segmentation"):
        figures.setdefault(row["model"], {}).update(
            titanx_caffe_fps=row.get("fps_titanx_caffe"),
            gtx1080ti_tensorrt_fps=row.get("fps_1080ti_1024x2048"))
    for row in _rows(tables, "table3_1080ti"):
        slot = figures.setdefault(row["model"], {})
        if slot.get("titanx_caffe_fps") is None:
            slot["titanx_caffe_fps"] = row.get("fps_caffe")
        if slot.get("gtx1080ti_tensorrt_fps") is None:
            slot["gtx1080ti_tensorrt_fps"] = row.get("fps")
    return figures


def known_model_names(tables: dict | None) -> list[str]:
    """Model names logs may name: the paper's, plus the generator's named models."""
    names = []
    for table in ("release_segmentation", "release_backbones", "table3_1080ti", "table4_titanx",
                  "table5_tx2", "table1_tx2_backbones"):
        names += [r["model"] for r in _rows(tables, table)]
    names += [load_model(n).display_name for n in model_names()]
    return list(dict.fromkeys(names))
