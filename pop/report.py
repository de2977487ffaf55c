"""``pop report``: what a search found, as the paper shows it.

* boundary table (B(D): latency, accuracy, encoding) — CSV and HTML;
* Fig. 5  pruned regions: for each trained w, the box of latencies >= Lat(y_w) and accuracies
          below Acc(w) where its pruned precedents lie (their latencies as a rug);
* Fig. 7  trained models and the boundary;
* Fig. 8a pruned vs trained models as the search proceeds;
* Fig. 8b accuracy vs number of precedents |{m ∈ Ŝ : m ≺ x}|.

PNG files plus one self-contained HTML page (images inlined).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np
from optuna.trial import TrialState

from .study import final_state
from tools.common.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return buf.getvalue()


def write_report(storage: str, study_name: str, out: Path) -> Path:
    plt = _plt()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    replay, study, spec = final_state(storage, study_name)
    st, space = replay.state, replay.space
    lat = space.latency
    D = st.D
    acc = np.array([st.acc[i] for i in D])
    boundary = sorted(st.boundary, key=lambda i: lat[i])
    completed = {int(t.user_attrs["candidate"]): t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if "candidate" in t.user_attrs}
    speculative = sorted(set(completed) - set(D))
    images: dict[str, bytes] = {}

    # boundary table
    with atomic_write(out / "boundary.csv") as f:
        w = csv.writer(f)
        w.writerow(["latency_ms", "accuracy", "encoding"])
        for i in boundary:
            w.writerow([f"{lat[i]:.4f}", f"{st.acc[i]:.4f}", space.encoding(i)])

    # Fig. 7: trained models and boundary
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(lat[D], acc * 100, s=10, color="tab:blue", label=f"trained (D, {len(D)})")
    if speculative:
        ax.scatter(lat[speculative], [completed[i].values[1] * 100 for i in speculative], s=10, marker="x",
                   color="0.6", label=f"trained by workers ahead, pruned later ({len(speculative)})")
    bl = lat[boundary]
    ba = np.array([st.acc[i] for i in boundary]) * 100
    ax.step(bl, ba, where="post", color="tab:red", lw=1.5)
    ax.scatter(bl, ba, s=24, color="tab:red", zorder=3, label=f"boundary B(D) ({len(boundary)})")
    ax.set_xlabel("latency (ms, LUT estimate)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 7: trained models and the boundary", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    images["fig7_trained_boundary.png"] = _save(fig, out / "fig7_trained_boundary.png")

    # Fig. 5: pruned regions
    fig, ax = plt.subplots(figsize=(6, 4))
    lo = float(acc.min() * 100) - 1 if len(acc) else 0
    tmax = float(lat.max())
    # all pruned models' latencies as a rug; the regions of the three trained models that
    # pruned most, each with its y_w (the fastest trained model at least as accurate)
    pruned = np.nonzero(st.pruned & ~st.trained)[0]
    ax.plot(lat[pruned], np.full(pruned.size, lo + 0.15), "|", color="0.5", ms=8, alpha=0.4,
            label=f"latencies of all pruned models ({pruned.size})")
    by_count = sorted(D, key=lambda w_: -int(np.sum(st.pruned_by == w_)))[:3]
    by_count = [w_ for w_ in by_count if np.isfinite(st.threshold[w_])]  # (noise-aware rule: y_w may not exist)
    for w_, colour in zip(by_count, ("tab:orange", "tab:purple", "tab:green")):
        thr = st.threshold[w_]
        y_w = min((y for y in D if st.acc[y] >= st.acc[w_] + st.margin), key=lambda y: lat[y])
        mine = np.nonzero(st.pruned_by == w_)[0]
        ax.add_patch(plt.Rectangle((thr, lo), tmax - thr, st.acc[w_] * 100 - lo, color=colour, alpha=0.15, lw=0))
        ax.plot(lat[mine], np.full(mine.size, lo + 0.45), "|", color=colour, ms=8, alpha=0.7)
        ax.scatter([lat[w_]], [st.acc[w_] * 100], s=60, marker="s", color=colour, zorder=4,
                   label=f"w pruning {mine.size} precedents")
        ax.scatter([lat[y_w]], [st.acc[y_w] * 100], s=80, marker="*", color=colour, zorder=4, edgecolor="k")
    ax.scatter(lat[D], acc * 100, s=10, color="tab:blue", label="trained")
    ax.step(bl, ba, where="post", color="tab:red", lw=1.5, label="boundary")
    ax.set_xlim(float(lat.min()), tmax)
    ax.set_ylim(lo, float(acc.max() * 100) + 1 if len(acc) else 1)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 5: pruned regions {m ≺ w, Lat(m) ≥ Lat(y_w)} (■ w, ★ y_w)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    images["fig5_pruned_regions.png"] = _save(fig, out / "fig5_pruned_regions.png")

    # Fig. 8a: pruned vs trained along the search
    pruned_untrained = np.array([s.pruned_untrained for s in st.steps])
    covered = np.array([s.covered for s in st.steps])
    fig, ax = plt.subplots(figsize=(5, 4))
    n = np.arange(1, len(st.steps) + 1)
    ax.plot(n, pruned_untrained, color="tab:orange", label="pruned without training (P \\ D)")
    ax.plot(n, n, color="tab:blue", label="trained models (D)")
    ax.plot(n, covered, color="k", lw=1, ls="--", label="covered (P ∪ D)")
    ax.axhline(space.size, color="0.6", lw=0.8, ls=":", label=f"|Ŝ| = {space.size}")
    ax.set_xlabel("trained models")
    ax.set_ylabel("models")
    ax.set_title(f"Fig. 8a: pruned {st.pruned_not_trained} for {len(D)} trained "
                 f"({st.pruned_not_trained / max(len(D), 1):.2f} per trained)", fontsize=10)
    ax.legend(fontsize=8)
    images["fig8a_pruned_vs_trained.png"] = _save(fig, out / "fig8a_pruned_vs_trained.png")

    # Fig. 8b: accuracy vs number of precedents
    fig, ax = plt.subplots(figsize=(5, 4))
    prec = np.array([s.precedents for s in st.steps])
    ax.scatter(prec, [s.accuracy * 100 for s in st.steps], s=10, color="tab:green")
    ax.set_xlabel("number of precedents |{m ∈ Ŝ : m ≺ x}|")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 8b: accuracy vs precedents", fontsize=10)
    images["fig8b_accuracy_vs_precedents.png"] = _save(fig, out / "fig8b_accuracy_vs_precedents.png")

    summary = {"study": study_name, "space_size": space.size, "trained": len(D),
               "pruned": st.pruned_not_trained, "pruned_per_trained": st.pruned_not_trained / max(len(D), 1),
               "boundary": [{"latency_ms": float(lat[i]), "accuracy": st.acc[i], "encoding": space.encoding(i)}
                            for i in boundary],
               "speculative_trainings": len(speculative), "finished": replay.done, "seed": spec.seed,
               "patience": spec.patience}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")

    rows = "\n".join(f"<tr><td>{lat[i]:.3f}</td><td>{st.acc[i] * 100:.2f}</td><td><code>{html.escape(space.encoding(i))}</code></td></tr>"
                     for i in boundary)
    imgs = "\n".join(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                     f"<figcaption>{name}</figcaption></figure>" for name, data in images.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>POP report: {html.escape(study_name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 10px;text-align:left}}
figure{{display:inline-block;margin:.5em}}img{{max-width:520px}}</style></head><body>
<h1>Partial Order Pruning: study {html.escape(study_name)}</h1>
<p>|Ŝ| = {space.size}; trained {len(D)}; pruned without training {st.pruned_not_trained}
({summary['pruned_per_trained']:.2f} per trained model; the paper: 438 / 200 = 2.2);
boundary unchanged for {st.unchanged} of K = {spec.patience} iterations; {'finished' if replay.done else 'still running'}.
{len(speculative)} extra trainings were done ahead by parallel workers and later pruned.</p>
<h2>Boundary B(D)</h2><table><tr><th>latency (ms)</th><th>accuracy (%)</th><th>architecture</th></tr>
{rows}</table>
<h2>Figures</h2>{imgs}
</body></html>
"""
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
