"""The training run's logs: ``train_log.csv`` / ``val_log.csv`` (rows keyed by iteration, cut
back to the resumed iteration on a restart) and ``curves.png`` drawn from them."""
from __future__ import annotations

import csv
import math
import io
from pathlib import Path
from dfseg.base.atomic import atomic_save_figure, atomic_write_text

__all__ = ["CsvLog", "plot_curves"]


class CsvLog:
    """Append-only CSV whose rows are keyed by iteration; reopening drops rows past a resume."""

    def __init__(self, path: Path, keep_until: int | None):
        self.path = path
        self.fields: list[str] | None = None
        self.rows: list[dict] = []
        if path.is_file() and keep_until is not None:
            with path.open() as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                self.rows = [r for r in reader if int(float(r["iteration"])) <= keep_until]
        self._rewrite()

    def _rewrite(self) -> None:
        buf = io.StringIO(newline="")
        if self.fields:
            w = csv.DictWriter(buf, self.fields)
            w.writeheader()
            w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def append(self, row: dict) -> None:
        if self.fields is None or set(row) - set(self.fields):
            self.fields = list(dict.fromkeys((self.fields or []) + list(row)))
            self.rows.append(row)
            self._rewrite()
            return
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(row)


def plot_curves(workdir: Path) -> Path | None:
    """``curves.png``: training outputs (loss) and validation metrics against iterations."""
    # matplotlib (~1 s with pyplot) only when curves are drawn, not on every import of the runner
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def read(name):
        p = workdir / name
        if not p.is_file():
            return []
        with p.open() as f:
            return list(csv.DictReader(f))

    train_rows, val_rows = read("train_log.csv"), read("val_log.csv")
    if not train_rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    skip = {"iteration", "elapsed_s", "lr"}
    its = [int(r["iteration"]) for r in train_rows]
    for key in [k for k in train_rows[0] if k not in skip]:
        values = [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in train_rows]
        axes[0].plot(its, values, lw=0.6, alpha=0.5, label=key)
        window = max(1, len(values) // 50)
        if window > 1:
            smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                      for i in range(len(values))]
            axes[0].plot(its, smooth, lw=1.5, label=f"{key} (mean of {window})")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("training")
    axes[0].legend(fontsize=7)
    if val_rows:
        vits = [int(r["iteration"]) for r in val_rows]
        for key in [k for k in val_rows[0] if k != "iteration"]:
            axes[1].plot(vits, [float(r[key]) for r in val_rows], marker="o", label=key)
        axes[1].legend(fontsize=7)
    axes[1].set_xlabel("iteration")
    axes[1].set_title("validation")
    fig.tight_layout()
    out = workdir / "curves.png"
    atomic_save_figure(fig, out, dpi=90)
    plt.close(fig)
    return out
