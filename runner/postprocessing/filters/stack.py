"""Median-style filtering of 3D labels (or 2D stacks) along z, or along z and y (BiaPy's Z/YZ filtering).

A median of label ids is meaningless (the median of ids 3 and 9 is an unrelated 6), so these filters take the
label analogue of a median: each voxel gets the most frequent id in its window (ties keep the voxel's own id
when it is among the most frequent, else the smallest). For a foreground/background image this equals the
median. It removes objects or gaps that flicker in single slices and smooths object outlines across slices.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from runner.errors import UserError
from runner.postprocessing.filters.filtering import register_filter
from runner.postprocessing.registry import Params


@njit(cache=True, nogil=True)
def _mode_filter(labels, rz, ry):  # pragma: no cover - compiled
    nz, ny, nx = labels.shape
    out = np.empty_like(labels)
    buf = np.empty((2 * rz + 1) * (2 * ry + 1), labels.dtype)
    for z in range(nz):
        z0, z1 = max(0, z - rz), min(nz, z + rz + 1)
        for y in range(ny):
            y0, y1 = max(0, y - ry), min(ny, y + ry + 1)
            for x in range(nx):
                own = labels[z, y, x]
                n = 0
                same = True
                for zz in range(z0, z1):
                    for yy in range(y0, y1):
                        v = labels[zz, yy, x]
                        buf[n] = v
                        n += 1
                        if v != own:
                            same = False
                if same:
                    out[z, y, x] = own
                    continue
                vals = np.sort(buf[:n])
                best, best_count, count = vals[0], 0, 0
                own_count = 0
                for i in range(n):
                    count = count + 1 if i > 0 and vals[i] == vals[i - 1] else 1
                    if vals[i] == own:
                        own_count = count
                    if count > best_count:
                        best, best_count = vals[i], count
                out[z, y, x] = own if own_count == best_count else best
    return out


def mode_filter(labels: np.ndarray, *, z_size: int, y_size: int = 1) -> np.ndarray:
    """Most frequent id in a ``z_size`` x ``y_size`` x 1 window around each voxel of ``(Z, Y, X)`` labels."""
    if labels.ndim != 3:
        raise UserError(
            f"z filtering needs 3D labels (or a 2D stack) with axes z,y,x, got shape {labels.shape}",
            hint="drop the z_median/yz_median filter for 2D images",
        )
    arr = np.ascontiguousarray(labels, dtype=np.uint32)
    return _mode_filter(arr, z_size // 2, y_size // 2)


class ZMedianParams(Params):
    size: int = Field(
        default=3, ge=1, le=31, description="Window length along z (odd; even sizes use size+1)."
    )


class YZMedianParams(Params):
    size: int = Field(
        default=3, ge=1, le=31, description="Window side along z and y (odd; even sizes use size+1)."
    )


@register_filter("z_median", params=ZMedianParams, needs="3D labels")
def z_median(labels, params: ZMedianParams, **_):
    """Majority (label median) over a window of `size` slices along z."""
    return mode_filter(labels, z_size=params.size)


@register_filter("yz_median", params=YZMedianParams, needs="3D labels")
def yz_median(labels, params: YZMedianParams, **_):
    """Majority (label median) over a size x size window in the z-y plane."""
    return mode_filter(labels, z_size=params.size, y_size=params.size)
