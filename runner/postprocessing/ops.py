"""Fast building blocks shared by the post-processors and filters (2D and 3D, anisotropic spacing).

Labelling uses connected-components-3d, distances the ``edt`` package and flooding bioimage-cpp's watershed,
each several times faster than the scikit-image/scipy equivalents (see
``benchmarks/bench_postprocessing.py``).
Lengths are in the units of ``resolution`` (pixels when it is None); sizes are pixel/voxel counts.
"""

from __future__ import annotations

import numpy as np


def spacing(resolution: tuple[float, ...] | None, ndim: int) -> tuple[float, ...]:
    """``resolution`` or unit spacing for ``ndim`` spatial axes."""
    return tuple(float(r) for r in resolution) if resolution is not None else (1.0,) * ndim


def label_mask(mask: np.ndarray, *, full: bool = False) -> np.ndarray:
    """Connected components of a boolean mask as uint32 ids ``1..n`` (face connectivity unless ``full``)."""
    import cc3d

    mask = np.ascontiguousarray(mask, dtype=bool)
    if full:
        conn = 8 if mask.ndim == 2 else 26
    else:
        conn = 4 if mask.ndim == 2 else 6
    return cc3d.connected_components(mask, connectivity=conn, out_dtype=np.uint32)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Ids renumbered ``1..n`` in order of first appearance as uint32 (0 stays background)."""
    import fastremap

    out, _ = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
    return out.astype(np.uint32, copy=False)


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
