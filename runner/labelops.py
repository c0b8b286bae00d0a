"""Vectorised per-label reductions over label images (one pass over the pixels, no loop per object)."""

from __future__ import annotations

import numpy as np
from numba import njit


def relabel_sequential(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Map the ids of ``labels`` to ``1..n`` (0 stays background), keeping their order.

    Returns ``(labels, n)``.
    """
    import fastremap

    out, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
    n = len(mapping) - (1 if 0 in mapping else 0)
    return out.astype(np.uint32, copy=False), int(n)


@njit(cache=True, nogil=True)
def _max_argmax(labels, values, n):
    best = np.full(n + 1, -np.inf)
    arg = np.full(n + 1, -1, np.int64)
    for i in range(labels.size):
        lab = labels[i]
        if lab != 0 and values[i] > best[lab]:
            best[lab] = values[i]
            arg[lab] = i
    return best, arg


def label_max(labels: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-label maximum of ``values`` and the flat index where it is reached (first occurrence).

    ``labels`` must be sequential ``0..n``. Returns ``(max, flat_index)``, each of length ``n + 1``
    (entry 0 unused: ``-inf`` / ``-1``).
    """
    return _max_argmax(labels.ravel(), values.ravel(), n)


def label_sizes(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Number of pixels of each label, indexed by id (length ``max + 1`` or ``n + 1``)."""
    flat = labels.ravel()
    return np.bincount(flat, minlength=(n + 1) if n is not None else 0)


def label_centroids(labels: np.ndarray, n: int) -> np.ndarray:
    """``(n + 1, ndim)`` centroid of each label in pixel coordinates (row 0 unused, NaN for empty ids)."""
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1).astype(np.float64)
    out = np.empty((n + 1, labels.ndim))
    for axis in range(labels.ndim):
        shape = [1] * labels.ndim
        shape[axis] = labels.shape[axis]
        coord = np.broadcast_to(np.arange(labels.shape[axis]).reshape(shape), labels.shape).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, axis] = np.bincount(flat, weights=coord, minlength=n + 1) / counts
    return out


def edge_distance(labels: np.ndarray, resolution: tuple[float, ...] | None = None) -> np.ndarray:
    """Distance of every object pixel to the nearest pixel outside its object (background or another id).

    Pixels next to the outside get 1 (one pixel spacing); background gets 0; the image border is not an edge.
    All objects are handled in one multi-label EDT pass.
    """
    import edt

    anis = None if resolution is None else tuple(float(r) for r in resolution)
    labels = np.ascontiguousarray(labels)
    if labels.dtype.itemsize > 2 and labels.size and labels.max() < 2**16:
        labels = labels.astype(np.uint16)  # less memory traffic in the EDT passes
    return edt.edt(labels, anisotropy=anis, black_border=False, parallel=0).astype(np.float32, copy=False)


@njit(cache=True, nogil=True)
def _divide_by_label(labels, values, denom, out):
    for i in range(labels.size):
        lab = labels[i]
        out[i] = values[i] / denom[lab] if lab != 0 else 0.0


def normalize_per_label(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``values`` divided by their per-label maximum (0 in background), float32, in one fused pass."""
    best, _ = label_max(labels, values, n)
    best[0] = 1.0
    best[best <= 0] = 1.0
    out = np.empty(values.shape, np.float32)
    _divide_by_label(labels.ravel(), values.ravel(), best, out.ravel())
    return out
