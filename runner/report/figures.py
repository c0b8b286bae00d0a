"""Pictures for the HTML report: overlays of each image (JPEG within a byte budget) and charts (SVG).

Everything returns ``data:`` URIs so the report is one file. Overlays are drawn by :mod:`runner.viz` and the
matching by :func:`runner.metrics.evaluate_image`, the functions ``runner predict --overlays`` and
``runner evaluate`` use.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np

from runner.report.collect import ImageEntry

MATCH_THRESHOLD = 0.5
"""IoU at which the gallery colours objects as matched / false positive / missed."""


@dataclass
class Overlay:
    """One image of the gallery."""

    rgb: np.ndarray
    """``(Y, X, 3)`` uint8: the image with outlines (several z slices side by side for 3D)."""
    caption: str
    counts: dict[str, int] | None
    """``{"tp", "fp", "fn"}`` at :data:`MATCH_THRESHOLD` when ground truth was found, else None."""
    n_objects: int
    problem: str | None = None


def data_uri(payload: bytes, mime: str) -> str:
    """``data:<mime>;base64,...``."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _resized(rgb: np.ndarray, max_side: int):
    from PIL import Image

    pil = Image.fromarray(rgb)
    scale = max_side / max(pil.size)
    if scale < 1:
        size = (max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale)))
        pil = pil.resize(size, Image.Resampling.LANCZOS)
    return pil


def encode_jpeg(rgb: np.ndarray, *, max_side: int, max_bytes: int, quality: int = 88) -> bytes:
    """JPEG of ``rgb`` (``(Y, X, 3)`` uint8) at most ``max_side`` pixels wide/high, shrunk until it fits
    ``max_bytes`` (never below 64 pixels, so a tight budget still gives a readable picture)."""
    side = max_side
    payload = b""
    for _ in range(10):
        buf = io.BytesIO()
        _resized(rgb, side).save(buf, format="JPEG", quality=quality, subsampling=0, optimize=True)
        payload = buf.getvalue()
        if len(payload) <= max_bytes or side <= 64:
            break
        side = max(64, int(side * math.sqrt(max_bytes / len(payload)) * 0.9))
        quality = max(60, quality - 8)
    return payload


def _slices(labels: np.ndarray, n: int = 3) -> list[int]:
    """Up to ``n`` z indices spread over the slices that hold objects (all slices when none does)."""
    occupied = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    lo, hi = (int(occupied[0]), int(occupied[-1])) if occupied.size else (0, labels.shape[0] - 1)
    return sorted({int(round(z)) for z in np.linspace(lo, hi, n + 2)[1:-1]} or {lo})


def _read_all(entry: ImageEntry):
    from runner.io import read_image, read_labels

    assert entry.instances is not None, "only called for images with instances"
    labels = read_labels(entry.instances).data
    image = gt = None
    problem = None
    if entry.image is not None:
        data = read_image(entry.image).data
        if data.shape[1:] == labels.shape:
            image = data.mean(axis=0)
        else:
            problem = f"image {entry.image.name} has shape {data.shape[1:]}, labels {labels.shape}"
    if entry.gt is not None:
        gt_data = read_labels(entry.gt).data
        gt = gt_data if gt_data.shape == labels.shape else None
    return labels, image, gt, problem


def overlay(entry: ImageEntry) -> Overlay:
    """The gallery picture of one image: outlines on the image (on black when the image is missing),
    coloured by match against the ground truth when there is one; 3D: a few z slices side by side."""
    from runner.errors import UserError
    from runner.viz import match_overlay

    try:
        labels, image, gt, problem = _read_all(entry)
    except UserError as exc:
        return Overlay(np.zeros((64, 64, 3), np.uint8), entry.name, None, 0, problem=str(exc))
    matches = None
    if gt is not None:
        from runner.metrics import evaluate_image

        matches = evaluate_image(gt, labels, thresholds=(MATCH_THRESHOLD,)).matches(MATCH_THRESHOLD)
    counts = (
        None
        if matches is None
        else {"tp": len(matches.pred_ids), "fp": len(matches.unmatched_pred), "fn": len(matches.unmatched_gt)}
    )
    background = image if image is not None else np.zeros(labels.shape, np.float32)
    if labels.ndim == 2:
        rgb = match_overlay(background, labels, gt, matches)
        caption = entry.name
    else:
        zs = _slices(labels)
        panels = [match_overlay(background[z], labels[z], None if gt is None else gt[z], matches) for z in zs]
        gap = np.ones((labels.shape[1], 6, 3))
        rgb = np.concatenate([p for z in panels for p in (z, gap)][:-1], axis=1)
        caption = f"{entry.name} (z = {', '.join(str(z) for z in zs)} of {labels.shape[0]})"
    n_objects = len(np.unique(labels)) - int((labels == 0).any())
    rgb8 = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return Overlay(rgb8, caption, counts, n_objects, problem)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return data_uri(buf.getvalue(), "image/svg+xml")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    return plt


def accuracy_chart(summary: dict) -> str:
    """Pooled accuracy, precision, recall, F1 and PQ against the matching threshold, as an SVG data URI."""
    plt = _pyplot()
    rows = summary["pooled"]["per_threshold"]
    x = [r["iou"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    styles = {
        "accuracy": ("k", 2.4),
        "precision": ("tab:blue", 1.2),
        "recall": ("tab:orange", 1.2),
        "f1": ("tab:green", 1.2),
        "panoptic_quality": ("tab:purple", 1.2),
    }
    for key, (color, lw) in styles.items():
        if all(key in r for r in rows):
            ax.plot(x, [r[key] for r in rows], marker="o", ms=3, color=color, lw=lw, label=key)
    ax.set_xlabel(f"{summary.get('criterion', 'iou')} threshold")
    ax.set_ylabel("score (pooled over images)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _svg(fig)


def histogram(name: str, values: list[float], *, unit: str = "") -> str:
    """Histogram of one per-object measurement over all images, as an SVG data URI."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.4, 2.4))
    data = np.asarray(values, float)
    ax.hist(data, bins=min(40, max(5, int(np.sqrt(data.size)))), color="tab:blue", alpha=0.85)
    ax.set_xlabel(f"{name} {unit}".strip(), fontsize=9)
    ax.set_ylabel("objects", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(f"median {np.median(data):.3g} (n = {data.size})", fontsize=9)
    fig.tight_layout()
    return _svg(fig)
