"""Post-processors for models that predict only a foreground probability (most zoo models).

- ``threshold_cc``: threshold, connected components.
- ``fg_watershed``: threshold, distance transform, distance maxima at least ``min_distance`` apart as seeds,
  watershed over the inverted distance inside the foreground — splits touching round objects.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from runner.errors import UserError
from runner.postprocessing import ops
from runner.postprocessing.params import Threshold, resolve_threshold
from runner.postprocessing.registry import UNIT_GRID, Params, register


class ForegroundParams(Params):
    channel: int = Field(
        default=0,
        ge=-64,
        le=4096,
        description="Channel holding the foreground probability (negative counts from the last).",
    )
    threshold: Threshold = Field(
        default=0.5, description="Foreground: probability above this ('auto' = Otsu)."
    )
    smooth: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="Gaussian sigma (resolution units) applied to the probability first; 0 = off.",
    )
    min_size: int = Field(
        default=10, ge=0, le=10**9, description="Drop objects with fewer pixels/voxels than this."
    )


class ThresholdCCParams(ForegroundParams):
    connectivity: Literal["face", "full"] = Field(
        default="face", description="Neighbourhood of connected components: face (4/6) or full (8/26)."
    )

    tuning_grid = {"threshold": UNIT_GRID, "smooth": (0.0, 1.0, 2.0)}


class FgWatershedParams(ForegroundParams):
    min_distance: float = Field(
        default=4.0,
        ge=0,
        le=1000,
        description="Seeds: distance maxima at least this far apart (resolution units).",
    )
    smooth_distance: float = Field(
        default=1.0,
        ge=0,
        le=50,
        description="Gaussian sigma applied to the distance map "
        "before finding maxima (breaks plateaus); 0 = off.",
    )
    min_height: float = Field(
        default=1.0,
        ge=0,
        le=1000,
        description="Seeds: ignore maxima whose distance to the background is below this (resolution units).",
    )

    tuning_grid = {
        "threshold": UNIT_GRID,
        "min_distance": (2.0, 3.0, 4.0, 6.0, 8.0, 12.0),
        "smooth_distance": (0.0, 1.0, 2.0, 3.0),
        "min_height": (0.5, 1.0, 2.0, 3.0, 4.0),
    }


def check_channel(prediction: np.ndarray, params: ForegroundParams) -> None:
    n = prediction.shape[0]
    if not -n <= params.channel < n:
        raise UserError(
            f"channel={params.channel} does not exist: the prediction has {n} channel(s) "
            f"(shape {prediction.shape})",
            hint=f"use a channel between 0 and {n - 1}",
        )


def foreground_mask(
    prediction: np.ndarray, params: ForegroundParams, resolution: tuple[float, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(probability, mask)`` of the chosen channel after optional smoothing and thresholding."""
    prob = ops.smooth(prediction[params.channel], params.smooth, resolution)
    return prob, prob > resolve_threshold(params.threshold, prob)


@register("threshold_cc", params=ThresholdCCParams, check=check_channel)
def threshold_cc(prediction, params: ThresholdCCParams, *, resolution=None, debug=None):
    """Foreground probability above a threshold, split into connected components."""
    prob, fg = foreground_mask(prediction, params, resolution)
    labels = ops.label_mask(fg, full=params.connectivity == "full")
    labels = ops.drop_small_and_relabel(labels, params.min_size)
    if debug is not None:
        debug.update(seeds=labels, foreground=fg, surface=prob.astype(np.float32))
    return labels


@register("fg_watershed", params=FgWatershedParams, check=check_channel)
def fg_watershed(prediction, params: FgWatershedParams, *, resolution=None, debug=None):
    """Foreground threshold, distance transform, its maxima as seeds, watershed: splits touching objects."""
    _, fg = foreground_mask(prediction, params, resolution)
    dist = ops.smooth(ops.distance_inside(fg, resolution), params.smooth_distance, resolution)
    seeds = ops.distance_peaks(dist, params.min_distance, resolution, min_height=params.min_height)
    seeds[~fg] = 0
    surface = -dist
    labels = ops.watershed(surface, seeds, fg)
    labels = ops.drop_small_and_relabel(labels, params.min_size)
    if debug is not None:
        debug.update(seeds=seeds, foreground=fg, surface=surface)
    return labels
