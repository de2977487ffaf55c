"""The outputs: the Fig. 1-style plot (mIoU against FPS), the Markdown and the
self-contained HTML page of the tables."""
from __future__ import annotations

import base64
import html
import io

from .build import Table, fps
from .log_figures import LogFigures


def plot_fig1(figs: LogFigures, paper: dict | None) -> bytes:
    """Fig. 1-style plot: Cityscapes mIoU against 1080Ti FPS (1024x2048); paper points and
    the points rebuilt from logs.  Returns PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    pts = []
    for p in (paper or {}).get("table3_1080ti", []):
        miou = p.get("miou_val") if p.get("miou_val") is not None else p.get("miou_test")
        if miou is not None and p.get("fps") is not None:
            pts.append((p["fps"], miou, p["model"], p["model"].startswith("DF"), p.get("miou_val") is None))
    for x, y, name, ours, test_only in pts:
        color = "tab:red" if ours else "tab:gray"
        ax.scatter(x, y, marker="o", s=45, zorder=3, edgecolors=color,
                   facecolors="none" if test_only else color)  # hollow: test mIoU only
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    df = sorted((x, y) for x, y, _, ours, _ in pts if ours)
    if df:
        ax.plot(*zip(*df), color="tab:red", alpha=0.4, lw=1, label="DF-Seg (paper)")
    logged = []
    for (model, platform, res), f in figs.timing.items():
        acc = figs.accuracy.get((model, "miou_val"))
        if platform == "1080ti_tensorrt" and res == "1024x2048" and acc:
            logged.append((fps(f.value), acc.value))
    if logged:
        ax.scatter(*zip(*logged), marker="*", s=180, color="tab:blue", zorder=4, label="rebuilt from released logs")
    ax.scatter([], [], marker="o", color="tab:gray", label="other methods (paper)")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="tab:gray", label="test mIoU (no val published)")
    ax.set_xlabel("FPS on 1080Ti (1024x2048; BiSeNet at 1536x768)")
    ax.set_ylabel("Cityscapes mIoU (%) (val; test where val is not published)")
    ax.set_title("Speed / accuracy (Fig. 1 style)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.1))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(tables: list[Table], figs: LogFigures, sources: dict) -> str:
    out = ["# Paper tables: paper | released logs | measured here", ""]
    out += [f"- {k}: {v}" for k, v in sources.items()] + [""]
    for t in tables:
        out += [f"## {t.title}", ""]
        out.append("| " + " | ".join(map(_md_cell, t.header)) + " |")
        out.append("|" + "|".join("---" for _ in t.header) + "|")
        out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in t.rows]
        if t.note:
            out += ["", t.note]
        out.append("")
    out += ["## Logs read", ""] + [f"- `{f}`: {what}" for f, what in figs.used]
    if figs.skipped:
        out += ["", "## Logs not used", ""] + [f"- `{f}`: {why}" for f, why in figs.skipped]
    return "\n".join(out) + "\n"


def to_html(tables: list[Table], figs: LogFigures, sources: dict, png: bytes,
            more_pngs: list[tuple[str, bytes]] = ()) -> str:
    """The page; `png` first (the Fig. 1-style plot of the logs), then each (alt text, PNG) of
    `more_pngs` (e.g. Fig. 1 redrawn with the measured points)."""
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>dfseg: paper tables</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;margin-bottom:.5em;font-size:13px}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#eee}"
             "p.note{color:#555;font-size:12px}</style></head><body>",
             "<h1>Paper tables: paper | released logs | measured here</h1><ul>"]
    parts += [f"<li>{e(k)}: {e(str(v))}</li>" for k, v in sources.items()]
    parts.append("</ul>")
    for alt, image in [("mIoU vs FPS", png), *more_pngs]:
        parts.append(f"<img alt='{e(alt)}' src='data:image/png;base64,{base64.b64encode(image).decode()}'>")
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in t.header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows]
        parts.append("</table>" + (f"<p class='note'>{e(t.note)}</p>" if t.note else ""))
    parts.append("<h2>Logs read</h2><ul>" + "".join(f"<li><code>{e(f)}</code>: {e(w)}</li>" for f, w in figs.used) + "</ul>")
    if figs.skipped:
        parts.append("<h2>Logs not used</h2><ul>"
                     + "".join(f"<li><code>{e(f)}</code>: {e(w)}</li>" for f, w in figs.skipped) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
