"""Fast building blocks shared by the post-processors and filters (2D and 3D, anisotropic spacing).

Labelling uses connected-components-3d, distances the ``edt`` package and flooding bioimage-cpp's watershed,
each several times faster than the scikit-image/scipy equivalents (see
``benchmarks/bench_postprocessing.py``).
Lengths are in the units of ``resolution`` (pixels when it is None); sizes are pixel/voxel counts.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numba import njit


def spacing(resolution: tuple[float, ...] | None, ndim: int) -> tuple[float, ...]:
    """``resolution`` or unit spacing for ``ndim`` spatial axes."""
    return tuple(float(r) for r in resolution) if resolution is not None else (1.0,) * ndim


def label_mask(mask: np.ndarray, *, full: bool = False) -> np.ndarray:
    """Connected components of a boolean mask as uint32 ids ``1..n`` (face connectivity unless ``full``)."""
    import cc3d

    mask = np.ascontiguousarray(mask, dtype=bool)
    conn: Literal[4, 6, 8, 26]
    if full:
        conn = 8 if mask.ndim == 2 else 26
    else:
        conn = 4 if mask.ndim == 2 else 6
    return cc3d.connected_components(mask, connectivity=conn, out_dtype=np.uint32)


def remove_small(labels: np.ndarray, min_size: int, *, max_size: int | None = None) -> np.ndarray:
    """Zero the objects with fewer than ``min_size`` (or more than ``max_size``) pixels; ids are kept."""
    if min_size <= 1 and max_size is None:
        return labels
    sizes = np.bincount(labels.ravel())
    drop = sizes < min_size
    if max_size is not None:
        drop |= sizes > max_size
    drop[0] = False
    if not drop.any():
        return labels
    keep = np.arange(len(sizes), dtype=labels.dtype)
    keep[drop] = 0
    return keep[labels]


def drop_small_and_relabel(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects with fewer than ``min_size`` pixels and renumber the rest ``1..n`` in id order (uint32).

    One count and one lookup pass, instead of a removal pass plus a renumbering pass.
    """
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    table = np.where(keep, np.cumsum(keep), 0).astype(np.uint32)
    return table[labels]


def distance_to(mask: np.ndarray, resolution: tuple[float, ...] | None = None) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest ``True`` pixel of ``mask`` (0 on the mask)."""
    import edt

    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    anis = spacing(resolution, mask.ndim)
    return edt.edt(np.ascontiguousarray(~mask), anisotropy=anis, black_border=False, parallel=0).astype(
        np.float32
    )


def distance_inside(mask: np.ndarray, resolution: tuple[float, ...] | None = None) -> np.ndarray:
    """Euclidean distance of every ``True`` pixel to the nearest ``False`` pixel (0 outside)."""
    import edt

    anis = spacing(resolution, mask.ndim)
    return edt.edt(
        np.ascontiguousarray(mask, dtype=np.uint8), anisotropy=anis, black_border=False, parallel=0
    ).astype(np.float32)


def watershed(surface: np.ndarray, markers: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Marker-controlled watershed: flood ``surface`` from ``markers`` (uint32) inside ``mask``.

    Face-connected flooding; pixels the flood cannot reach (outside the mask, or in mask parts without a
    marker) stay 0. Heights are quantised to 65,536 levels, so ties within a level are broken arbitrarily: add
    a small tie-breaking term to plateaus (see :func:`with_tie_break`).
    """
    from bioimage_cpp.segmentation import watershed as _ws

    surface = np.ascontiguousarray(surface, dtype=np.float32)
    markers = np.ascontiguousarray(markers, dtype=np.uint32)
    if mask is not None:
        mask = np.ascontiguousarray(mask, dtype=bool)
    return _ws(surface, markers, mask=mask)


def with_tie_break(
    surface: np.ndarray, seeds: np.ndarray, resolution: tuple[float, ...] | None, *, weight: float = 0.01
) -> np.ndarray:
    """``surface`` + ``weight`` x its span x the normalised distance to the seeds: plateaus split halfway."""
    dist = distance_to(seeds > 0, resolution)
    finite = np.isfinite(dist)
    if not finite.any():
        return surface
    top = float(dist[finite].max()) or 1.0
    span = float(surface.max() - surface.min()) or 1.0
    return surface + (np.where(finite, dist, top) / top) * (weight * span)


def expand_labels(
    labels: np.ndarray,
    distance: float,
    *,
    resolution: tuple[float, ...] | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Grow every object by up to ``distance`` into the background (and inside ``mask`` when given).

    A distance-transform expansion: background pixels are flooded in order of their distance to the objects,
    so each one joins the object reached first (the nearest, up to the flooding's 4/6-connected paths) and the
    objects never overlap. Cost is one EDT and one watershed, independent of the number of objects.
    """
    if distance <= 0 or not labels.any():
        return labels
    dist = distance_to(labels > 0, resolution)
    allowed = dist <= distance
    if mask is not None:
        allowed &= np.asarray(mask, bool) | (labels > 0)
    return watershed(dist, labels, allowed)


@njit(cache=True, nogil=True)
def _unravel(p, strides, coord):  # pragma: no cover - compiled
    for a in range(len(strides)):
        coord[a] = p // strides[a]
        p -= coord[a] * strides[a]


@njit(cache=True, nogil=True)
def _frontier(out, mask, shape, strides, fill):  # pragma: no cover - compiled
    """Labelled pixels with a growable face neighbour, in raster order, into ``fill``; returns the count."""
    ndim = len(shape)
    coord = np.zeros(ndim, np.int64)
    k = 0
    for p in range(out.size):
        if out[p] == 0:
            continue
        _unravel(p, strides, coord)
        for a in range(ndim):
            lo = coord[a] > 0 and mask[p - strides[a]] and out[p - strides[a]] == 0
            hi = coord[a] < shape[a] - 1 and mask[p + strides[a]] and out[p + strides[a]] == 0
            if lo or hi:
                if fill.size:
                    fill[k] = p
                k += 1
                break
    return k


@njit(cache=True, nogil=True)
def _grow_bfs(labels, mask, shape):  # pragma: no cover - compiled
    ndim = len(shape)
    strides = np.ones(ndim, np.int64)
    for a in range(ndim - 2, -1, -1):
        strides[a] = strides[a + 1] * shape[a + 1]
    out = labels.copy()
    free = 0
    for p in range(out.size):
        if mask[p] and out[p] == 0:
            free += 1
    n_front = _frontier(out, mask, shape, strides, np.empty(0, np.int64))
    queue = np.empty(n_front + free, np.int64)
    tail = _frontier(out, mask, shape, strides, queue)
    head = 0
    coord = np.zeros(ndim, np.int64)
    while head < tail:
        p = queue[head]
        head += 1
        _unravel(p, strides, coord)
        for a in range(ndim):
            for step in (-1, 1):
                c = coord[a] + step
                if c < 0 or c >= shape[a]:
                    continue
                q = p + step * strides[a]
                if mask[q] and out[q] == 0:
                    out[q] = out[p]
                    queue[tail] = q
                    tail += 1
    return out


def grow_bfs(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grow labelled objects into ``mask`` by breadth-first search over face neighbours.

    Every mask pixel reachable inside the mask joins the object with the fewest face steps to it (ties: the
    object whose frontier comes first in raster order), so a band between two objects splits halfway. One
    linear pass — much cheaper than an EDT plus a watershed when the distances only need to break a thin band.
    Pixel steps are unweighted: use :func:`expand_labels` for anisotropic spacing.
    """
    flat = np.ascontiguousarray(labels, dtype=np.uint32).ravel()
    allowed = np.ascontiguousarray(mask, dtype=bool).ravel()
    out = _grow_bfs(flat, allowed, np.array(labels.shape, np.int64))
    return out.reshape(labels.shape)


def smooth(arr: np.ndarray, sigma: float, resolution: tuple[float, ...] | None = None) -> np.ndarray:
    """Gaussian smoothing of a ``(Z,) Y, X`` array with ``sigma`` in the units of ``resolution``."""
    if sigma <= 0:
        return arr
    from scipy import ndimage as ndi

    sig = [sigma / s for s in spacing(resolution, arr.ndim)]
    return ndi.gaussian_filter(arr.astype(np.float32, copy=False), sig, mode="nearest")


def box_radius(length: float, resolution: tuple[float, ...] | None, ndim: int) -> tuple[int, ...]:
    """Per-axis pixel radius of a box ``length`` wide in the units of ``resolution`` (at least 0)."""
    return tuple(max(0, int(round(length / s))) for s in spacing(resolution, ndim))


def distance_peaks(
    dist: np.ndarray, min_distance: float, resolution: tuple[float, ...] | None, *, min_height: float = 0.0
) -> np.ndarray:
    """Labelled seeds at the local maxima of ``dist`` within a box of radius ``min_distance``.

    Maxima that form a plateau or lie within one pixel of each other form one seed; maxima lower than
    ``min_height`` are dropped.
    """
    from scipy import ndimage as ndi

    radius = box_radius(min_distance, resolution, dist.ndim)
    size = tuple(2 * r + 1 for r in radius)
    peaks = (dist >= ndi.maximum_filter(dist, size=size, mode="nearest")) & (dist > min_height)
    return label_mask(peaks, full=True)
