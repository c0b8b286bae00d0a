"""``train_log.csv`` and the ``charts/`` PNGs of a run, rewritten from the history kept in the checkpoint."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

FIRST_COLUMNS = ["iteration", "epoch", "lr", "loss"]


def write_log(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts; training rows and validation rows share the ``iteration`` column) as CSV."""
    from runner.io import write_text_atomic

    keys: list[str] = list(FIRST_COLUMNS)
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in keys})
    write_text_atomic(path, buf.getvalue())


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_charts(folder: Path, rows: list[dict], *, metric: str) -> None:
    """``loss.png`` (training and validation loss) and ``val_metric.png`` (the selection metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runner.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    train = [(r["iteration"], r["loss"]) for r in rows if _num(r.get("loss"))]
    val = [(r["iteration"], r["val_loss"]) for r in rows if _num(r.get("val_loss"))]
    score = [(r["iteration"], r["val_metric"]) for r in rows if _num(r.get("val_metric"))]

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="training", lw=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", ms=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if train and min(v for _, v in train) > 0:
        ax.set_yscale("log")
    if train or val:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "loss.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if score:
        its, vals = zip(*score, strict=True)
        ax.plot(its, vals, "o-", ms=3)
        best = (max if metric != "loss" else min)(range(len(vals)), key=lambda i: vals[i])
        ax.plot([its[best]], [vals[best]], "r*", ms=12, label=f"best {vals[best]:.4f} @ {its[best]}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no validation round yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "val_metric.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _num(v) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
