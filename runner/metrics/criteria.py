"""Matching criteria, registered by name: how well a predicted object covers a ground-truth object.

* ``iou``: mask intersection over union (default; StarDist's ``iou``).
* ``ior``: intersection over reference, i.e. over the ground-truth object (StarDist's ``iot``): a prediction
  that covers the object counts even when it spills over.
* ``iop``: intersection over prediction (StarDist's ``iop``): a prediction lying inside the object counts.
* ``boundary_iou``: IoU of the boundary bands (Cheng et al. 2021): each object keeps only its pixels within
  ``boundary_width`` pixels (Euclidean) of its contour, the image edge counting as contour. It follows the
  outline rather than the bulk, so it tells good from rough masks of large objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError
from runner.metrics.overlap import Overlap


@dataclass(frozen=True)
class Criterion:
    """A matching criterion: a score in [0, 1] for each overlapping (ground truth, prediction) pair."""

    name: str
    description: str
    score: Callable[[Overlap], np.ndarray]
    """``score(overlap) -> (k,) float64`` for the pairs of ``overlap``."""
    boundary: bool = False
    """Scores are computed on the boundary bands instead of the whole masks."""


def _iou(ov: Overlap) -> np.ndarray:
    return ov.inter / ov.union


def _ior(ov: Overlap) -> np.ndarray:
    return ov.inter / ov.gt_sizes[ov.rows]


def _iop(ov: Overlap) -> np.ndarray:
    return ov.inter / ov.pred_sizes[ov.cols]


CRITERIA: dict[str, Criterion] = {}
_ALIASES = {"iot": "ior", "mask_iou": "iou", "boundary": "boundary_iou", "biou": "boundary_iou"}


def register_criterion(criterion: Criterion) -> Criterion:
    """Add a criterion to the registry (name must be new)."""
    if criterion.name in CRITERIA:
        raise ValueError(f"criterion {criterion.name!r} is already registered")
    CRITERIA[criterion.name] = criterion
    return criterion


register_criterion(Criterion("iou", "mask intersection over union", _iou))
register_criterion(Criterion("ior", "intersection over the reference (ground-truth) object", _ior))
register_criterion(Criterion("iop", "intersection over the predicted object", _iop))
register_criterion(
    Criterion("boundary_iou", "IoU of the inner boundary bands (Cheng et al. 2021)", _iou, boundary=True)
)


def get_criterion(name: str) -> Criterion:
    """The criterion registered as ``name`` (StarDist's ``iot`` is accepted for ``ior``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in CRITERIA:
        raise UserError(f"unknown matching criterion {name!r}", hint=f"use one of {', '.join(CRITERIA)}")
    return CRITERIA[key]


def boundary_band(labels: np.ndarray, width: float) -> np.ndarray:
    """The inner boundary band of every object: its pixels within ``width`` (Euclidean, pixels) of its
    contour.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) ndarray of uint
        Label image (0 = background); another object and the image edge both count as outside.
    width : float
        Band width d >= 1 in pixels.

    Returns
    -------
    ndarray, same shape and dtype as ``labels``
        The labels restricted to their bands.
    """
    import edt

    if width < 1:
        raise UserError(f"boundary width must be at least 1 pixel, got {width}")
    labels = np.ascontiguousarray(labels)
    if not labels.any():
        return labels.copy()
    dist = edt.edt(labels, black_border=True, parallel=1)
    return np.where((dist > 0) & (dist <= width), labels, 0).astype(labels.dtype, copy=False)
