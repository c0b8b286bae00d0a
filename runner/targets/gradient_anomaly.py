"""GAInS-style gradient-anomaly weight maps, for weighting the training loss per pixel.

Every object carries a radial field: at each of its pixels, the unit vector pointing away from the object's
centroid. Inside one object, seen through a small window, these vectors mostly agree. Where two objects
touch, overlap or cross, the window holds pixels of several objects whose vectors point against each other:
the sum of the unit vectors in the window is short compared with the number of vectors. We slide a window of
``window_size`` over the image and measure that disagreement::

    anomaly = mixed * (1 - |sum of unit vectors in window| / number of object pixels in window)

where ``mixed`` is true when the window holds at least two different objects (so object centres, where the
field of a single object diverges, are not flagged). The weight map is::

    weight = 1 + ga_factor * anomaly + overlap_highlight * (pixel covered by more than one object)

Everything is computed with whole-image filters (box sums, max/min filters), not per object.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage as ndi

from runner.labelops import label_centroids, relabel_sequential


class GradientAnomalyOptions(BaseModel):
    """Parameters of the gradient-anomaly weight map (GAInS defaults for nuclei)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    window_size: int = Field(
        default=8,
        ge=2,
        le=64,
        description="Side of the sliding window in pixels (about 1/20 to 1/10 of an object's size).",
    )
    ga_factor: float = Field(
        default=0.8, ge=0, le=10, description="Extra weight given to fully anomalous pixels."
    )
    overlap_highlight: float = Field(
        default=0.1, ge=0, le=10, description="Extra weight on pixels shared by overlapping objects."
    )


def _radial_field(labels: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unit vectors (one array per axis) pointing away from each object's centroid; zero in background."""
    seq, n = relabel_sequential(labels)
    centroids = label_centroids(seq, n)
    centroids[0] = 0.0
    fg = seq > 0
    comps = []
    for axis in range(seq.ndim):
        shape = [1] * seq.ndim
        shape[axis] = seq.shape[axis]
        coord = np.arange(seq.shape[axis], dtype=np.float32).reshape(shape)
        comps.append(np.where(fg, coord - centroids[seq, axis].astype(np.float32), 0.0).astype(np.float32))
    norm = np.sqrt(sum(c * c for c in comps))
    np.divide(1.0, norm, out=norm, where=norm > 0)
    return [c * norm for c in comps], seq


def gradient_anomaly_weights(
    labels: np.ndarray, options: GradientAnomalyOptions | None = None, *, overlapping: bool = False
) -> np.ndarray:
    """Per-pixel loss weights ``>= 1`` for a label image ``(Z,) Y, X`` or an overlapping stack
    ``(N, (Z,) Y, X)``.

    Returns a float32 map of the spatial shape.
    """
    options = options or GradientAnomalyOptions()
    planes = list(labels) if overlapping else [labels]
    spatial = planes[0].shape if planes else labels.shape[1:]
    size = options.window_size
    vec_sum = [np.zeros(spatial, np.float32) for _ in spatial]
    count = np.zeros(spatial, np.float32)
    # ids of all planes live in one range; the sentinel (larger than every id) marks background for the
    # minimum filter (scipy's filters overflow on the extreme values of a dtype)
    sentinel = sum(int(np.count_nonzero(np.bincount(p.ravel()))) for p in planes) + 1
    lmax = np.zeros(spatial, np.int64)
    lmin = np.full(spatial, sentinel, np.int64)
    offset = 0
    for plane in planes:
        field, seq = _radial_field(plane)
        fg = seq > 0
        for acc, comp in zip(vec_sum, field, strict=True):
            acc += comp
        count += fg
        ids = np.where(fg, seq.astype(np.int64) + offset, 0)
        offset += int(seq.max()) if seq.size else 0
        lmax = np.maximum(lmax, ndi.maximum_filter(ids, size=size))
        lmin = np.minimum(lmin, ndi.minimum_filter(np.where(fg, ids, sentinel), size=size))
    mixed = (lmax > 0) & (lmin < lmax)
    win = float(size) ** len(spatial)
    n_win = ndi.uniform_filter(count, size=size) * win
    s2 = sum((ndi.uniform_filter(acc, size=size) * win) ** 2 for acc in vec_sum)
    coherence = np.zeros(spatial, np.float32)
    np.divide(np.sqrt(s2), n_win, out=coherence, where=n_win > 1e-6)
    anomaly = np.where(mixed, np.clip(1.0 - coherence, 0.0, 1.0), 0.0)
    weights = 1.0 + options.ga_factor * anomaly + options.overlap_highlight * (count > 1)
    return weights.astype(np.float32)
