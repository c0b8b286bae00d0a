"""Filters that change object shapes using their neighbours: big-instance repair and Voronoi filling."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from runner.errors import UserError
from runner.postprocessing import ops
from runner.postprocessing.filters.basic import fill_holes
from runner.postprocessing.filters.filtering import register_filter
from runner.postprocessing.params import Threshold, resolve_threshold
from runner.postprocessing.registry import Params


def contacts(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face contacts between objects and the boundary length of each object, counted in pixel faces.

    Returns
    -------
    pairs : (K, 3) ndarray of int64
        ``(a, b, faces)`` for every pair of touching objects ``a < b``.
    boundary : (max_id + 1,) ndarray of int64
        Faces between each object and anything else (background, other objects); the image border is not
        counted.
    """
    n = int(labels.max())
    boundary = np.zeros(n + 1, np.int64)
    codes = []
    for axis in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = labels[tuple(lo)].ravel(), labels[tuple(hi)].ravel()
        diff = a != b
        a, b = a[diff].astype(np.int64), b[diff].astype(np.int64)
        boundary += np.bincount(a, minlength=n + 1) + np.bincount(b, minlength=n + 1)
        both = (a > 0) & (b > 0)
        lo_id, hi_id = np.minimum(a[both], b[both]), np.maximum(a[both], b[both])
        codes.append(lo_id * (n + 1) + hi_id)
    boundary[0] = 0
    if not codes or sum(len(c) for c in codes) == 0:
        return np.zeros((0, 3), np.int64), boundary
    uniq, counts = np.unique(np.concatenate(codes), return_counts=True)
    return np.stack([uniq // (n + 1), uniq % (n + 1), counts], axis=1), boundary


class RepairLargeParams(Params):
    min_size: int = Field(
        default=1000,
        ge=1,
        le=10**12,
        description="Objects with at least this many pixels/voxels are repaired.",
    )
    min_contact: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Merge a neighbour into a large object when at least "
        "this fraction of the neighbour's boundary touches it (0 = any contact).",
    )
    fill_holes: bool = Field(default=True, description="Fill holes left inside the repaired objects.")


@register_filter("repair_large", params=RepairLargeParams)
def repair_large(labels, params: RepairLargeParams, **_):
    """Big-instance repair: merge neighbours mostly bordering a large object into it, fill its holes."""
    if not labels.any():
        return labels
    sizes = np.bincount(labels.ravel())
    pairs, boundary = contacts(labels)
    target = np.arange(len(sizes), dtype=np.uint32)
    large = set(np.flatnonzero(sizes >= params.min_size).tolist()) - {0}
    # largest first, so a piece touching two large objects joins the bigger one
    order = sorted(large, key=lambda i: -sizes[i])
    taken: set[int] = set()
    for big in order:
        if big in taken:
            continue
        for a, b, faces in pairs[(pairs[:, 0] == big) | (pairs[:, 1] == big)]:
            other = int(b if a == big else a)
            if other in taken or other == big or target[other] != other:
                continue
            if faces >= params.min_contact * max(boundary[other], 1):
                target[other] = big
                taken.add(other)
    out = target[labels]
    if params.fill_holes and large:
        out = fill_holes(out, only=np.array(sorted(large), np.uint32))
    return out


class VoronoiParams(Params):
    mask: Literal["auto", "foreground", "prediction", "all"] = Field(
        default="auto",
        description="Area to fill: foreground = the method's foreground mask, prediction = channels above "
        "threshold, all = the whole image; auto = foreground when known, else prediction.",
    )
    channels: list[int] | None = Field(
        default=None,
        description="Prediction channels summed into the mask (e.g. 0,1 for "
        "B+C); None = the only channel of a 1-channel prediction.",
    )
    threshold: Threshold = Field(default=0.5, description="The summed channels above this form the mask.")
    max_distance: float | None = Field(
        default=None,
        gt=0,
        le=10**6,
        description="Do not grow farther than this (resolution units); None = no limit.",
    )


def _voronoi_mask(labels, params: VoronoiParams, prediction, foreground) -> np.ndarray | None:
    mode = params.mask
    if mode == "auto":
        mode = "foreground" if foreground is not None else "prediction"
    if mode == "all":
        return None
    if mode == "foreground":
        if foreground is None:
            raise UserError(
                "voronoi mask=foreground needs the post-processor's foreground mask",
                hint="use mask=prediction with channels=..., or mask=all",
            )
        return np.asarray(foreground, bool)
    if prediction is None:
        raise UserError(
            "voronoi needs the prediction (or the method's foreground) to know the area to fill",
            hint="use mask=all to fill the whole image",
        )
    channels = params.channels
    if channels is None:
        if prediction.shape[0] != 1:
            raise UserError(
                f"voronoi: say which of the {prediction.shape[0]} prediction channels form the mask",
                hint="e.g. --filter voronoi:channels=0,1 for B+C",
            )
        channels = [0]
    bad = [c for c in channels if not -prediction.shape[0] <= c < prediction.shape[0]]
    if bad:
        raise UserError(
            f"voronoi channels {bad} do not exist in a prediction with {prediction.shape[0]} channels"
        )
    total = np.sum([prediction[c] for c in channels], axis=0)
    return total > resolve_threshold(params.threshold, total)


@register_filter("voronoi", params=VoronoiParams)
def voronoi(labels, params: VoronoiParams, *, prediction=None, resolution=None, foreground=None):
    """Voronoi tessellation inside the foreground: each mask pixel joins the nearest object (EDT flooding)."""
    mask = _voronoi_mask(labels, params, prediction, foreground)
    if mask is not None and mask.shape != labels.shape:
        raise UserError(f"voronoi mask shape {mask.shape} does not match the labels {labels.shape}")
    if not labels.any():
        return labels
    limit = params.max_distance if params.max_distance is not None else np.inf
    dist = ops.distance_to(labels > 0, resolution)
    allowed = dist <= limit
    if mask is not None:
        allowed &= mask | (labels > 0)
    return ops.watershed(dist, labels, allowed)
