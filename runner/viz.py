"""Pictures for people: label colouring, outline overlays and multi-panel PNGs (matplotlib, no screen)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Panel:
    """One panel of a figure: an array and how to show it."""

    title: str
    data: np.ndarray
    """``(Y, X)`` grey/labels/map, or ``(Y, X, 3)`` RGB in 0..1."""
    kind: str = "image"
    """``image`` (percentile-stretched grey), ``labels`` (random colours), ``map`` (colour bar), ``rgb``."""


def display_slice(data: np.ndarray, *, axis_z: int | None = None) -> np.ndarray:
    """A 2D view of a 2D/3D array: the middle z slice of 3D data."""
    if data.ndim == 3 and (axis_z is not None or data.shape[-1] not in (3, 4)):
        return data[data.shape[0] // 2]
    return data


def stretch(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Percentile-normalise to 0..1 for display."""
    image = np.asarray(image, np.float32)
    if image.size == 0:
        return image
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        hi = lo + 1e-6
    return np.clip((image - lo) / (hi - lo), 0, 1)


def label_colors(n: int, *, seed: int = 3) -> np.ndarray:
    """``(n + 1, 3)`` distinct-ish random colours; row 0 (background) is black."""
    rng = np.random.default_rng(seed)
    hsv = np.stack([rng.random(n + 1), 0.55 + 0.45 * rng.random(n + 1), 0.7 + 0.3 * rng.random(n + 1)], 1)
    from matplotlib.colors import hsv_to_rgb

    rgb = hsv_to_rgb(hsv)
    rgb[0] = 0
    return rgb


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """Colour a ``(Y, X)`` label image."""
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    if n > 1_000_000:
        import fastremap

        labels, _ = fastremap.renumber(labels, in_place=False)
        n = int(labels.max())
    return label_colors(n)[labels]


def outlines(labels: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of every object (bool)."""
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, mode="inner")


def overlay_outlines(image: np.ndarray, labels: np.ndarray, color_of: np.ndarray | None = None) -> np.ndarray:
    """RGB picture of ``image`` with each object's outline drawn in ``color_of[id]`` (random when None)."""
    grey = stretch(image)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    edge = outlines(labels)
    colors = label_colors(int(labels.max())) if color_of is None else color_of
    rgb[edge] = colors[labels[edge]]
    return rgb


def save_panels(
    path: str | Path,
    panels: list[Panel],
    *,
    ncols: int | None = None,
    title: str | None = None,
    panel_size: float = 3.2,
    dpi: int = 110,
) -> Path:
    """Write a row (or grid) of panels as one PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from runner.io.atomic import atomic_path

    ncols = ncols or len(panels)
    nrows = int(np.ceil(len(panels) / ncols))
    h, w = panels[0].data.shape[:2] if panels else (1, 1)
    aspect = min(max(h / max(w, 1), 0.25), 4.0)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        squeeze=False,
        figsize=(panel_size * ncols, panel_size * aspect * nrows + 0.3 + (0.4 if title else 0)),
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        data = panel.data
        if panel.kind == "labels":
            ax.imshow(labels_to_rgb(data), interpolation="nearest")
        elif panel.kind == "rgb":
            ax.imshow(np.clip(data, 0, 1), interpolation="nearest")
        elif panel.kind == "map":
            im = ax.imshow(data, cmap="magma", interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        else:
            ax.imshow(stretch(data), cmap="gray", interpolation="nearest")
        ax.set_title(panel.title, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


MATCH_COLORS = {"tp": (0.1, 0.9, 0.2), "fp": (0.2, 0.5, 1.0), "fn": (1.0, 0.15, 0.15)}
"""Outline colours of :func:`match_overlay`: matched predictions green, false positives blue, missed ground
truth red."""


def match_overlay(
    image: np.ndarray, pred: np.ndarray, gt: np.ndarray | None = None, matches=None
) -> np.ndarray:
    """RGB picture of a 2D ``image`` (or one z slice) with prediction outlines coloured by match.

    With ``gt`` and ``matches`` (a :class:`runner.metrics.Matches`), matched predictions are outlined green,
    unmatched predictions blue and ground-truth objects nobody found red; otherwise each object gets its
    own colour.
    """
    if gt is None or matches is None:
        return overlay_outlines(image, pred)
    rgb = np.repeat(stretch(image)[..., None], 3, axis=-1)
    matched = np.asarray(matches.pred_ids, dtype=np.int64)
    # ids of the whole image may exceed those of a slice of it
    colors = np.zeros((max(int(pred.max()), int(matched.max(initial=0))) + 1, 3))
    colors[1:] = MATCH_COLORS["fp"]
    colors[matched] = MATCH_COLORS["tp"]
    edge = outlines(pred)
    rgb[edge] = colors[pred[edge]]
    missed = np.isin(gt, np.asarray(matches.unmatched_gt, dtype=np.int64)) & (gt > 0)
    gt_edge = outlines(np.where(missed, gt, 0))
    rgb[gt_edge] = MATCH_COLORS["fn"]
    return rgb


def save_match_figure(
    path: str | Path,
    image: np.ndarray,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    matches=None,
    *,
    title: str | None = None,
) -> Path:
    """``image | prediction outlines coloured by match`` as one PNG (middle slice of 3D data)."""
    mid = (lambda a: a[a.shape[0] // 2]) if pred.ndim == 3 else (lambda a: a)
    label = "green matched, blue false pos., red missed" if gt is not None else "prediction"
    panels = [
        Panel("image", mid(image)),
        Panel(label, match_overlay(mid(image), mid(pred), None if gt is None else mid(gt), matches), "rgb"),
    ]
    h, w = mid(pred).shape
    return save_panels(path, panels, title=title, panel_size=max(4.0, min(7.0, 3.2 * max(h, w) / 256)))
