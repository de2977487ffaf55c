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
import dataclasses
import errno
import html
import io
import json
from pathlib import Path

import numpy as np
from optuna.trial import TrialState

from .study import Replay, SearchSpec, final_state
from dfseg.base.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def _plt():
    # matplotlib (with pyplot ~1 s to import) only when a report is drawn, not for every `pop` command
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


@dataclasses.dataclass
class _Findings:
    """What a study found, replayed: the final state of Algorithm 1 and the study's trials."""

    replay: Replay
    spec: SearchSpec
    D: list[int]                  # trained models, in training order
    acc: np.ndarray               # their accuracies
    boundary: list[int]           # B(D), by latency
    completed: dict               # candidate -> its COMPLETE trial (workers ahead included)
    speculative: list[int]        # trained by workers ahead of the replay, pruned later

    @property
    def state(self):
        return self.replay.state

    @property
    def space(self):
        return self.replay.space

    @property
    def lat(self) -> np.ndarray:
        return self.replay.space.latency

    @property
    def boundary_lat(self) -> np.ndarray:
        return self.lat[self.boundary]

    @property
    def boundary_acc_pct(self) -> np.ndarray:
        return np.array([self.state.acc[i] for i in self.boundary]) * 100


def _findings(storage: str, study_name: str) -> _Findings:
    replay, study, spec = final_state(storage, study_name)
    st, lat = replay.state, replay.space.latency
    D = st.D
    completed = {int(t.user_attrs["candidate"]): t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if "candidate" in t.user_attrs}
    return _Findings(replay, spec, D, np.array([st.acc[i] for i in D]), sorted(st.boundary, key=lambda i: lat[i]),
                     completed, sorted(set(completed) - set(D)))


def write_report(storage: str, study_name: str, out: Path) -> Path:
    plt = _plt()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, --out names the report's folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    f = _findings(storage, study_name)
    _write_boundary_csv(f, out / "boundary.csv")
    images: dict[str, bytes] = {}
    for name, draw in (("fig7_trained_boundary.png", _fig7_trained_boundary),
                       ("fig5_pruned_regions.png", _fig5_pruned_regions),
                       ("fig8a_pruned_vs_trained.png", _fig8a_pruned_vs_trained),
                       ("fig8b_accuracy_vs_precedents.png", _fig8b_accuracy_vs_precedents)):
        images[name] = _save(draw(plt, f), out / name)
    summary = _summary(f, study_name)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "report.html", _html_page(f, study_name, summary, images))
    return out / "report.html"


def _write_boundary_csv(f: _Findings, path: Path) -> None:
    with atomic_write(path) as file:
        w = csv.writer(file)
        w.writerow(["latency_ms", "accuracy", "encoding"])
        for i in f.boundary:
            w.writerow([f"{f.lat[i]:.4f}", f"{f.state.acc[i]:.4f}", f.space.encoding(i)])


def _fig7_trained_boundary(plt, f: _Findings):
    lat, D, speculative = f.lat, f.D, f.speculative
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(lat[D], f.acc * 100, s=10, color="tab:blue", label=f"trained (D, {len(D)})")
    if speculative:
        ax.scatter(lat[speculative], [f.completed[i].values[1] * 100 for i in speculative], s=10, marker="x",
                   color="0.6", label=f"trained by workers ahead, pruned later ({len(speculative)})")
    bl, ba = f.boundary_lat, f.boundary_acc_pct
    ax.step(bl, ba, where="post", color="tab:red", lw=1.5)
    ax.scatter(bl, ba, s=24, color="tab:red", zorder=3, label=f"boundary B(D) ({len(f.boundary)})")
    ax.set_xlabel("latency (ms, LUT estimate)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 7: trained models and the boundary", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _fig5_pruned_regions(plt, f: _Findings):
    st, lat, D, acc = f.state, f.lat, f.D, f.acc
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
    ax.step(f.boundary_lat, f.boundary_acc_pct, where="post", color="tab:red", lw=1.5, label="boundary")
    ax.set_xlim(float(lat.min()), tmax)
    ax.set_ylim(lo, float(acc.max() * 100) + 1 if len(acc) else 1)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 5: pruned regions {m ≺ w, Lat(m) ≥ Lat(y_w)} (■ w, ★ y_w)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _fig8a_pruned_vs_trained(plt, f: _Findings):
    st, D = f.state, f.D
    pruned_untrained = np.array([s.pruned_untrained for s in st.steps])
    covered = np.array([s.covered for s in st.steps])
    fig, ax = plt.subplots(figsize=(5, 4))
    n = np.arange(1, len(st.steps) + 1)
    ax.plot(n, pruned_untrained, color="tab:orange", label="pruned without training (P \\ D)")
    ax.plot(n, n, color="tab:blue", label="trained models (D)")
    ax.plot(n, covered, color="k", lw=1, ls="--", label="covered (P ∪ D)")
    ax.axhline(f.space.size, color="0.6", lw=0.8, ls=":", label=f"|Ŝ| = {f.space.size}")
    ax.set_xlabel("trained models")
    ax.set_ylabel("models")
    ax.set_title(f"Fig. 8a: pruned {st.pruned_not_trained} for {len(D)} trained "
                 f"({st.pruned_not_trained / max(len(D), 1):.2f} per trained)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _fig8b_accuracy_vs_precedents(plt, f: _Findings):
    steps = f.state.steps
    fig, ax = plt.subplots(figsize=(5, 4))
    prec = np.array([s.precedents for s in steps])
    ax.scatter(prec, [s.accuracy * 100 for s in steps], s=10, color="tab:green")
    ax.set_xlabel("number of precedents |{m ∈ Ŝ : m ≺ x}|")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fig. 8b: accuracy vs precedents", fontsize=10)
    return fig


def _summary(f: _Findings, study_name: str) -> dict:
    st, lat, D = f.state, f.lat, f.D
    return {"study": study_name, "space_size": f.space.size, "trained": len(D),
            "pruned": st.pruned_not_trained, "pruned_per_trained": st.pruned_not_trained / max(len(D), 1),
            "boundary": [{"latency_ms": float(lat[i]), "accuracy": st.acc[i], "encoding": f.space.encoding(i)}
                         for i in f.boundary],
            "speculative_trainings": len(f.speculative), "finished": f.replay.done, "seed": f.spec.seed,
            "patience": f.spec.patience}


def _html_page(f: _Findings, study_name: str, summary: dict, images: dict[str, bytes]) -> str:
    """One self-contained page: the boundary table and every figure inlined as a data URL."""
    st, lat, space = f.state, f.lat, f.space
    rows = "\n".join(f"<tr><td>{lat[i]:.3f}</td><td>{st.acc[i] * 100:.2f}</td><td><code>{html.escape(space.encoding(i))}</code></td></tr>"
                     for i in f.boundary)
    imgs = "\n".join(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                     f"<figcaption>{name}</figcaption></figure>" for name, data in images.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>POP report: {html.escape(study_name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 10px;text-align:left}}
figure{{display:inline-block;margin:.5em}}img{{max-width:520px}}</style></head><body>
<h1>Partial Order Pruning: study {html.escape(study_name)}</h1>
<p>|Ŝ| = {space.size}; trained {len(f.D)}; pruned without training {st.pruned_not_trained}
({summary['pruned_per_trained']:.2f} per trained model; the paper: 438 / 200 = 2.2);
boundary unchanged for {st.unchanged} of K = {f.spec.patience} iterations; {'finished' if f.replay.done else 'still running'}.
{len(f.speculative)} extra trainings were done ahead by parallel workers and later pruned.</p>
<h2>Boundary B(D)</h2><table><tr><th>latency (ms)</th><th>accuracy (%)</th><th>architecture</th></tr>
{rows}</table>
<h2>Figures</h2>{imgs}
</body></html>
"""
