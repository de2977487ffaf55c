"""A parsed `caffe time` result (tools.report.log_parsers.parse_caffe_time, or a run through
tools.engines.caffe) as text: JSON, a CSV of the layers, or a Markdown table with the summary
line.  The log commands print through here, so a log reads the same whichever one prints it."""
from __future__ import annotations

import csv
import io
import json

__all__ = ["FORMATS", "render", "to_csv", "to_json", "to_markdown"]

FORMATS = ("json", "csv", "markdown")


def _ms(value) -> str:
    return "" if value is None else f"{value:.4f}"


def to_markdown(result: dict) -> str:
    rows = ["| layer | forward ms | backward ms |", "|---|---:|---:|"]
    rows += [f"| {l['name']} | {_ms(l.get('forward_ms'))} | {_ms(l.get('backward_ms'))} |"
             for l in result["layers"]]
    summary = (f"Average forward: {result['forward_ms']:.4f} ms = {result['fps']:.1f} FPS"
               f"; average backward: {_ms(result.get('backward_ms')) or '-'} ms"
               f"; iterations: {result.get('iterations') or '-'}")
    return summary + "\n\n" + "\n".join(rows) + "\n"


def to_csv(result: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["layer", "forward_ms", "backward_ms"])
    for l in result["layers"]:
        writer.writerow([l["name"], l.get("forward_ms"), l.get("backward_ms")])
    writer.writerow(["(average forward pass)", result["forward_ms"], result.get("backward_ms")])
    return buf.getvalue()


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2) + "\n"


def render(result: dict, fmt: str = "markdown") -> str:
    """`result` in one of FORMATS; csv and markdown need a caffe time result (its layers)."""
    return {"json": to_json, "csv": to_csv, "markdown": to_markdown}[fmt](result)
