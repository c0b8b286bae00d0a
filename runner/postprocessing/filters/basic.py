"""Size filters and per-object hole filling."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from runner.postprocessing import ops
from runner.postprocessing.filters.filtering import register_filter
from runner.postprocessing.registry import Params


class RemoveSmallParams(Params):
    min_size: int = Field(
        default=10, ge=0, le=10**12, description="Remove objects with fewer pixels/voxels than this."
    )


class RemoveLargeParams(Params):
    max_size: int = Field(
        default=100000, ge=1, le=10**12, description="Remove objects with more pixels/voxels than this."
    )


class FillHolesParams(Params):
    max_hole_size: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        description="Fill only holes up to this many pixels/voxels; None = any size.",
    )
    per_slice: bool = Field(
        default=False, description="3D labels: fill holes slice by slice (2D holes in each z plane)."
    )


@register_filter("remove_small", params=RemoveSmallParams)
def remove_small(labels, params: RemoveSmallParams, **_):
    """Remove objects smaller than min_size pixels/voxels (other ids unchanged)."""
    return ops.remove_small(labels, params.min_size)


@register_filter("remove_large", params=RemoveLargeParams)
def remove_large(labels, params: RemoveLargeParams, **_):
    """Remove objects larger than max_size pixels/voxels (other ids unchanged)."""
    return ops.remove_small(labels, 0, max_size=params.max_size)


def fill_holes(
    labels: np.ndarray, *, max_hole_size: int | None = None, only: np.ndarray | None = None
) -> np.ndarray:
    """Fill background regions enclosed by a single object with that object's id.

    Parameters
    ----------
    labels : (Z,) Y, X ndarray of uint32
        Instance labels.
    max_hole_size : int, optional
        Leave larger holes open.
    only : ndarray of int, optional
        Fill holes only of the objects with these ids.

    Returns
    -------
    (Z,) Y, X ndarray of uint32
        A background region counts as a hole when it does not touch the image border and all its
        face-neighbours belong to one object. Gaps between two objects stay open.
    """
    holes = ops.label_mask(labels == 0)
    n_holes = int(holes.max())
    if n_holes == 0:
        return labels
    border = np.zeros(n_holes + 1, bool)
    for axis in range(labels.ndim):
        for idx in (0, -1):
            border[np.unique(np.take(holes, idx, axis=axis))] = True
    pair_list = []
    for axis in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        for a, b in ((holes[tuple(lo)], labels[tuple(hi)]), (holes[tuple(hi)], labels[tuple(lo)])):
            m = (a > 0) & (b > 0)
            pair_list.append(np.stack([a[m].astype(np.int64), b[m].astype(np.int64)], axis=1))
    pairs = np.unique(np.concatenate(pair_list), axis=0)
    n_neigh = np.bincount(pairs[:, 0], minlength=n_holes + 1)
    owner = np.zeros(n_holes + 1, np.uint32)
    owner[pairs[:, 0]] = pairs[:, 1]
    fill = (n_neigh == 1) & ~border
    fill[0] = False
    if max_hole_size is not None:
        fill &= np.bincount(holes.ravel(), minlength=n_holes + 1) <= max_hole_size
    if only is not None:
        fill &= np.isin(owner, np.asarray(only))
    table = np.where(fill, owner, 0).astype(np.uint32)
    return np.where(holes > 0, table[holes], labels).astype(np.uint32)


@register_filter("fill_holes", params=FillHolesParams)
def fill_holes_filter(labels, params: FillHolesParams, **_):
    """Fill holes inside each object (background enclosed by one object); max hole size, per z slice."""
    if params.per_slice and labels.ndim == 3:
        return np.stack([fill_holes(s, max_hole_size=params.max_hole_size) for s in labels])
    return fill_holes(labels, max_hole_size=params.max_hole_size)


class SizeRangeParams(Params):
    """Both bounds at once (used by the tuner)."""

    min_size: int = Field(default=0, ge=0, le=10**12, description="Remove objects smaller than this.")
    max_size: int | None = Field(
        default=None, ge=1, le=10**12, description="Remove objects larger than this; None = no upper bound."
    )

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be >= min_size ({self.min_size})")
        return self


@register_filter("size_range", params=SizeRangeParams)
def size_range(labels, params: SizeRangeParams, **_):
    """Keep objects whose size lies in [min_size, max_size] pixels/voxels."""
    return ops.remove_small(labels, params.min_size, max_size=params.max_size)
